"""The NATS JetStream adapter of the bus port.

Events travel on subjects `<prefix>.<family>.<type>`, one stream per family. A family is a set of
event types whose relative order matters to some consumer: the learner joins `tip.decided` with
the `feedback.reaction` or `reward.defaulted` that follows it, so those share the `decisions`
stream, which keeps them in publish order. Each consumer gets a durable pull consumer per stream
it needs, acknowledges explicitly after its transaction commits, and records tracking rows in that
transaction, so a redelivery (a crash between commit and ack) is recognised and skipped.

Each message carries the event's Protobuf envelope (`Event.to_envelope()`), the same bytes the
embedded log keeps, so a log moves between topologies unchanged. A payload about a person travels
sealed with their data key (`tipwise.events.shredding`); the adapter opens it, with a database read
of the key, just before the consumer applies it; when the key is gone (the person was erased) the
event is acknowledged unapplied and counted in `tipwise_events_shredded_skipped_total`. The relay publishes committed
outbox rows with `Nats-Msg-Id` set to the event id: if it crashes
between publishing and marking the rows sent, the re-publish falls in JetStream's duplicate window
and is dropped. A consumer that fails on an event gets it back later (`nak` with a growing delay);
after `max_attempts` deliveries the event goes to the dead-letter subject
`<prefix>.dead.<consumer>` with the error, is counted in `tipwise_events_dead_lettered_total`, and
the consumer moves on.

nats-py is asyncio-only, while the bus port is synchronous (the worker thread and the consumers'
database transactions are); the adapter runs its own event loop in a daemon thread and waits for
each network step there.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from tipwise.events import repository
from tipwise.events.bus import Lag, apply_exactly_once, open_batch
from tipwise.events.contracts import (
    CONSENT_CHANGED,
    FEEDBACK_REACTION,
    PREFERENCES_CHANGED,
    REWARD_DEFAULTED,
    SIGNAL_RECEIVED,
    TIP_DECIDED,
    TIP_DELIVERED,
    USER_DELETED,
    Consumer,
    Event,
)
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import TipwiseError
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics

log = get_logger(__name__)

T = TypeVar("T")

FAMILIES: dict[str, frozenset[str]] = {
    "decisions": frozenset({TIP_DECIDED, TIP_DELIVERED, FEEDBACK_REACTION, REWARD_DEFAULTED}),
    "signals": frozenset({SIGNAL_RECEIVED}),
    # What a person says about themselves and their data.
    "privacy": frozenset({CONSENT_CHANGED, PREFERENCES_CHANGED, USER_DELETED}),
}
# Types no family names (a module's new event) travel on this one until they are given a family.
OTHER = "other"
_FAMILY_OF = {event_type: family for family, types in FAMILIES.items() for event_type in types}
_HEADER_ERROR = "Tipwise-Error"
_HEADER_ATTEMPTS = "Tipwise-Attempts"


class BusUnavailable(TipwiseError):
    status = 503
    title = "Event bus unavailable"


def family_of(event_type: str) -> str:
    return _FAMILY_OF.get(event_type, OTHER)


@dataclass(frozen=True, kw_only=True)
class NatsSettings:
    url: str
    # Namespaces subjects (`<prefix>.…`) and streams (`<PREFIX>_…`); tests use a fresh one each.
    prefix: str = "tipwise"
    batch_size: int = 500
    # How long an idle `dispatch()` waits for the next event before it returns 0.
    fetch_wait: float = 0.5
    max_attempts: int = 5
    # Delay before redelivering an event a consumer failed on, by attempt (the last one repeats).
    retry_delays: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0)
    timeout: float = 5.0
    # JetStream drops a re-published event id within this window.
    duplicate_window: float = 120.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.prefix):
            raise ValueError(f"NATS prefix {self.prefix!r} may hold only letters, digits, '_' and '-'")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def stream(self, family: str) -> str:
        return f"{self.prefix.upper().replace('-', '_')}_{family.upper()}"

    def subject(self, event_type: str) -> str:
        return f"{self.prefix}.{family_of(event_type)}.{event_type}"

    @property
    def dead_letter_stream(self) -> str:
        return self.stream("dead_letter")

    def dead_letter_subject(self, consumer: str) -> str:
        return f"{self.prefix}.dead.{consumer}"


def encode(event: Event) -> tuple[bytes, dict[str, str]]:
    """Return the message data (the Protobuf envelope, as the embedded log keeps it) and headers."""
    return event.to_envelope(), {"Nats-Msg-Id": str(event.id)}


def decode(msg: Msg) -> Event:
    return Event.from_envelope(msg.data)


class _Loop:
    """An asyncio loop in a daemon thread, for a synchronous caller."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tipwise-nats", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise BusUnavailable(f"NATS did not answer within {timeout:g} s") from None
        except FutureCancelled:
            # nats-py cancels what is in flight when the connection drops and reconnects.
            raise BusUnavailable("NATS dropped the connection while answering") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class _Subscription:
    consumer: Consumer
    family: str
    pull: JetStreamContext.PullSubscription | None = None
    types: frozenset[str] = field(default_factory=frozenset)


class NatsBus:
    """The bus port over NATS JetStream; connects lazily and reconnects on its own."""

    def __init__(self, *, settings: NatsSettings, db: Database, clock: Clock, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._subscriptions: list[_Subscription] = []
        self._loop = _Loop()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._connect_lock = asyncio.Lock()

    # -- the port --------------------------------------------------------------

    def subscribe(self, consumer: Consumer) -> None:
        if any(s.consumer.name == consumer.name for s in self._subscriptions):
            raise ValueError(f"a consumer named {consumer.name!r} is already subscribed")
        families = sorted({family_of(t) for t in consumer.event_types})
        self._subscriptions.extend(
            _Subscription(consumer=consumer, family=f, types=consumer.event_types) for f in families
        )

    def relay(self) -> int:
        moved = 0
        while True:
            with self._db.write() as session:
                batch = repository.unpublished_events(session, limit=self._settings.batch_size, lock=True)
                if not batch:
                    break
                self._run(self._publish([event for _, event in batch]))
                repository.mark_published(session, [seq for seq, _ in batch], at=self._clock.now())
            moved += len(batch)
            if len(batch) < self._settings.batch_size:
                break
        if self._metrics is not None:
            # An empty first batch means nothing waits (for this relay): an idle relay polling
            # every 50 ms need not count the outbox as well.
            self._metrics.outbox_backlog.set(self.outbox_backlog() if moved else 0)
        return moved

    def dispatch(self) -> int:
        applied = 0
        for index, subscription in enumerate(self._subscriptions):
            # Only the first fetch of a round waits for events; the others take what is there.
            wait = self._settings.fetch_wait if index == 0 else 0.01
            applied += self._dispatch_one(subscription, wait=wait)
        return applied

    def lag(self, consumer: str) -> Lag:
        pending = 0
        for subscription in self._subscriptions:
            if subscription.consumer.name == consumer and subscription.pull is not None:
                info = self._run(subscription.pull.consumer_info())
                pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        # JetStream does not tell the age of the oldest pending message without fetching it.
        return Lag(events=pending, oldest=None)

    # -- beyond the port -------------------------------------------------------

    def connected(self) -> bool:
        """Connect if need be; return whether NATS answers now."""
        try:
            self._run(self._ensure(), timeout=min(self._settings.timeout, 2.0))
        except BusUnavailable:
            return False
        return self._nc is not None and self._nc.is_connected

    def outbox_backlog(self) -> int:
        with self._db.read() as session:
            return repository.outbox_backlog(session)

    def dead_letters(self) -> int:
        """Return how many events sit on the dead-letter stream."""

        async def count() -> int:
            js = await self._ensure()
            try:
                info = await js.stream_info(self._settings.dead_letter_stream)
            except NotFoundError:
                return 0
            return int(info.state.messages)

        return self._run(count())

    def status(self) -> dict[str, object]:
        """What the operator view shows: connection, outbox backlog, dead letters."""
        connected = self.connected()
        return {
            "kind": "NATS JetStream",
            "connected": connected,
            "outbox_backlog": self.outbox_backlog(),
            "dead_letters": self.dead_letters() if connected else None,
            "dead_letter_subject": f"{self._settings.prefix}.dead.>",
        }

    def delete_streams(self) -> None:
        """Remove every stream of this prefix (tests, and `tipwise` tooling for a fresh start)."""

        async def delete() -> None:
            js = await self._ensure()
            for family in [*FAMILIES, OTHER, "dead_letter"]:
                try:
                    await js.delete_stream(self._settings.stream(family))
                except NotFoundError:
                    pass

        self._run(delete())

    def close(self) -> None:
        """Flush what is in flight (acks included), close the connection and stop the loop thread."""
        client = self._nc
        if client is not None and not client.is_closed:

            async def close() -> None:
                try:
                    await client.flush(timeout=2)
                finally:
                    await client.close()

            try:
                self._run(close(), timeout=self._settings.timeout)
            except BusUnavailable:
                log.warning("nats_close_unclean")
        self._loop.close()

    # -- internals -------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        try:
            return self._loop.run(coroutine, timeout or self._settings.timeout * 2)
        except BusUnavailable:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise BusUnavailable(f"NATS: {type(exc).__name__}: {exc}") from exc

    async def _ensure(self) -> JetStreamContext:
        async with self._connect_lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await asyncio.wait_for(self._connect(), self._settings.timeout)
                self._js = self._nc.jetstream(timeout=self._settings.timeout)
                await self._declare(self._js)
            js = self._js
            if js is None:  # connected by a call that failed half-way
                raise BusUnavailable("NATS connection is not ready")
            if any(s.pull is None for s in self._subscriptions):
                await self._bind(js)
            return js

    async def _connect(self) -> Client:
        async def disconnected() -> None:
            log.warning("nats_disconnected")

        async def reconnected() -> None:
            log.info("nats_reconnected")

        async def error(exc: Exception) -> None:
            log.debug("nats_error", error=f"{type(exc).__name__}: {exc}")

        return await nats.connect(
            self._settings.url,
            name="tipwise",
            connect_timeout=2,
            reconnect_time_wait=0.5,
            max_reconnect_attempts=-1,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )

    async def _declare(self, js: JetStreamContext) -> None:
        settings = self._settings
        for family in [*FAMILIES, OTHER]:
            await _declare_stream(
                js,
                StreamConfig(
                    name=settings.stream(family),
                    subjects=[f"{settings.prefix}.{family}.>"],
                    storage=StorageType.FILE,
                    duplicate_window=settings.duplicate_window,
                ),
            )
        await _declare_stream(
            js,
            StreamConfig(
                name=settings.dead_letter_stream, subjects=[f"{settings.prefix}.dead.>"], storage=StorageType.FILE
            ),
        )

    async def _bind(self, js: JetStreamContext) -> None:
        for subscription in self._subscriptions:
            if subscription.pull is not None:
                continue
            name = _durable_name(subscription.consumer.name)
            subscription.pull = await js.pull_subscribe(
                f"{self._settings.prefix}.{subscription.family}.>",
                durable=name,
                stream=self._settings.stream(subscription.family),
                config=ConsumerConfig(
                    durable_name=name,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    # Redelivery is this adapter's job (nak with delay, then dead letter), so the
                    # server never gives up on its own; ack_wait only covers a consumer that died.
                    max_deliver=-1,
                    ack_wait=60,
                    max_ack_pending=self._settings.batch_size * 4,
                ),
            )

    async def _publish(self, batch: Sequence[Event]) -> None:
        js = await self._ensure()
        futures = []
        for event in batch:
            data, headers = encode(event)
            futures.append(await js.publish_async(self._settings.subject(event.type), data, headers=headers))
        acks = await asyncio.wait_for(asyncio.gather(*futures), self._settings.timeout)
        duplicates = sum(1 for ack in acks if ack.duplicate)
        if duplicates:
            log.info("relay_duplicates_dropped", events=duplicates)

    def _dispatch_one(self, subscription: _Subscription, *, wait: float) -> int:
        self._run(self._ensure())
        pull = subscription.pull
        if pull is None:
            raise BusUnavailable(f"no JetStream consumer bound for {subscription.consumer.name!r}")
        messages = self._run(_fetch(pull, self._settings.batch_size, wait))
        if not messages:
            return 0
        pairs = [(msg, decode(msg)) for msg in messages]
        try:
            applied = self._apply(subscription.consumer, [event for _, event in pairs])
        except Exception:
            log.warning("consumer_batch_failed", consumer=subscription.consumer.name, events=len(pairs), exc_info=True)
            # Find the events that fail: apply one by one, each in its own transaction.
            applied = sum(self._apply_alone(subscription.consumer, msg, event) for msg, event in pairs)
            return applied
        self._run(_ack_all([msg for msg, _ in pairs]))
        return applied

    def _apply(self, consumer: Consumer, batch: Sequence[Event]) -> int:
        wanted = [event for event in batch if event.type in consumer.event_types]
        if not wanted:
            return 0
        try:
            with self._db.write() as session:
                # An event about an erased person (their key is gone) is skipped, and acknowledged.
                opened = open_batch(session, wanted, metrics=self._metrics, reader=consumer.name)
                fresh = apply_exactly_once(session, consumer, opened, at=self._clock.now())
        except BaseException:
            consumer.aborted()
            raise
        consumer.committed()
        return len(fresh)

    def _apply_alone(self, consumer: Consumer, msg: Msg, event: Event) -> int:
        try:
            applied = self._apply(consumer, [event])
        except Exception as exc:
            self._run(self._retry_or_dead_letter(consumer.name, msg, exc))
            return 0
        self._run(msg.ack())
        return applied

    async def _retry_or_dead_letter(self, consumer: str, msg: Msg, exc: Exception) -> None:
        attempts = msg.metadata.num_delivered or 1
        if attempts < self._settings.max_attempts:
            delays = self._settings.retry_delays
            await msg.nak(delay=delays[min(attempts - 1, len(delays) - 1)])
            if self._metrics is not None:
                self._metrics.events_redelivered.labels(consumer=consumer).inc()
            return
        js = await self._ensure()
        headers = dict(msg.headers or {})
        # A dead letter is a new message: its own id, so it is not dropped as a duplicate.
        headers.pop("Nats-Msg-Id", None)
        headers[_HEADER_ERROR] = f"{type(exc).__name__}: {exc}"[:500]
        headers[_HEADER_ATTEMPTS] = str(attempts)
        await js.publish(self._settings.dead_letter_subject(consumer), msg.data, headers=headers)
        await msg.term()
        if self._metrics is not None:
            self._metrics.events_dead_lettered.labels(consumer=consumer).inc()
        log.error(
            "event_dead_lettered",
            consumer=consumer,
            event_id=(msg.headers or {}).get("Nats-Msg-Id"),
            attempts=attempts,
            error=headers[_HEADER_ERROR],
        )


async def _declare_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.stream_info(str(config.name))
    except NotFoundError:
        await js.add_stream(config)


async def _fetch(pull: JetStreamContext.PullSubscription, batch: int, wait: float) -> list[Msg]:
    try:
        return await pull.fetch(batch, timeout=wait)
    except (TimeoutError, nats.errors.TimeoutError):
        return []


async def _ack_all(messages: Sequence[Msg]) -> None:
    for msg in messages:
        await msg.ack()


def _durable_name(consumer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", consumer)
