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
import itertools
import json
import re
import threading
import time
from collections.abc import Coroutine, Sequence
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, StorageType, StreamConfig
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
    batch_size: int = 2000
    # How long an idle `dispatch()` waits for the next event before it returns 0.
    fetch_wait: float = 0.5
    # Once events arrive, how long a fetch waits for more of them to make one batch.
    fetch_linger: float = 0.01
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

    def submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` on the loop without waiting for it; a failure is logged."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        future.add_done_callback(_log_failure)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class _Subscription:
    consumer: Consumer
    family: str
    pull: _Pull | None = None
    types: frozenset[str] = field(default_factory=frozenset)


_NEXT = "$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"


class _Pull:
    """A durable pull consumer read through JetStream's pull API, one request at a time.

    nats-py's `fetch` waits for each message in a task of its own, which costs more CPU than
    everything else the learner does per event; here the messages of a request are collected by one
    subscription callback. A request asks for up to `batch` messages; it ends when that many came,
    or with a status message (404 nothing there, 408 expired, 409 consumer gone or at its limit).
    `fetch` returns once messages are there (after a short linger, so they come as one batch) and
    may leave its request open: what it delivers meanwhile waits in `_ready` for the next fetch, in
    stream order. Only one request is open at a time, so every message and status belongs to it.
    """

    def __init__(self, nc: Client, *, stream: str, consumer: str, linger: float) -> None:
        self._nc = nc
        self._subject = _NEXT.format(stream=stream, consumer=consumer)
        self._linger = linger
        self.stream = stream
        self.consumer = consumer
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._ready: list[Msg] = []
        self._owed = 0  # messages the open request may still deliver
        self._open_until = 0.0  # monotonic deadline of the open request; 0 when none is open
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def stop(self) -> None:
        """Unsubscribe and hand back the messages fetched but not taken (redelivered at once)."""
        # A request still open would deliver to an inbox nobody reads, and JetStream would hold
        # those messages for the ack wait (60 s): let it end first (a request for what is there
        # ends at once, a waiting one within its expiry).
        deadline = time.monotonic() + 2.0
        while self._is_open() and await self._wait(deadline):
            pass
        for msg in self._ready:
            await msg.nak()
        self._ready.clear()
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_message(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._ready.append(msg)
            self._owed -= 1
            if self._owed <= 0:
                self._open_until = 0.0
        elif status != "100":  # anything but a heartbeat ends the request
            self._open_until = 0.0
        self._changed.set()

    def _is_open(self) -> bool:
        if self._open_until and time.monotonic() > self._open_until:
            self._open_until = 0.0  # lost, e.g. with a dropped connection
        return self._open_until > 0

    async def _request(self, batch: int, *, expires: float | None) -> None:
        body: dict[str, object] = {"batch": batch}
        if expires is None:
            # Whatever is there now, then a status: the request ends at once.
            body["no_wait"] = True
            lifetime = 5.0
        else:
            body["expires"] = int(expires * 1e9)
            lifetime = expires + 1.0
        self._owed = batch
        self._open_until = time.monotonic() + lifetime
        self._changed.clear()
        await self._nc.publish(self._subject, json.dumps(body).encode(), reply=self._inbox)

    async def _wait(self, deadline: float) -> bool:
        """Wait for a message or a status until `deadline`; return False when it passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        """Return up to `batch` messages in stream order, waiting up to `wait` for the first.

        Before returning, it asks for the next batch of what is there now, so that batch travels
        while the caller applies this one.
        """
        deadline = time.monotonic() + wait
        if not self._ready and not self._is_open():
            await self._request(batch, expires=None)
        # A request for what is there now is answered at once; wait for it to end.
        while not self._ready and self._is_open() and await self._wait(max(deadline, time.monotonic() + 1.0)):
            pass
        if not self._ready and not self._is_open() and wait > 0:
            await self._request(batch, expires=wait)
            while not self._ready and self._is_open() and await self._wait(deadline):
                pass
        if self._ready and len(self._ready) < batch and self._is_open():
            # More of this request may be on the wire: take them in the same batch.
            linger = time.monotonic() + self._linger
            while len(self._ready) < batch and self._is_open() and await self._wait(linger):
                pass
        taken, self._ready = self._ready[:batch], self._ready[batch:]
        if taken and not self._ready and not self._is_open():
            await self._request(batch, expires=None)
        return taken


class _Publisher:
    """Publishes a batch to JetStream and collects the stream's acknowledgements on one inbox.

    nats-py's `publish_async` keeps a future and a semaphore per message; a batch needs only a count.
    """

    def __init__(self, nc: Client) -> None:
        self.client = nc
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._batches = itertools.count()
        self._batch = -1
        self._left = 0
        self._duplicates = 0
        self._errors: list[str] = []
        self._done: asyncio.Event = asyncio.Event()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(f"{self._inbox}.*.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        batch = msg.subject.rsplit(".", 2)[1]
        if batch != str(self._batch):
            return  # a late answer to a batch that timed out
        if not msg.data:  # a status, e.g. 503 when no stream takes the subject
            status = (msg.headers or {}).get("Status", "?")
            self._errors.append(f"status {status} {(msg.headers or {}).get('Description', '')}".strip())
        else:
            ack = json.loads(msg.data)
            if "error" in ack:
                self._errors.append(str(ack["error"].get("description", ack["error"])))
            elif ack.get("duplicate"):
                self._duplicates += 1
        self._left -= 1
        if self._left <= 0:
            self._done.set()

    async def publish(self, messages: Sequence[tuple[str, bytes, dict[str, str]]], timeout: float) -> int:
        """Publish `messages` (subject, data, headers) in order; return how many the stream dropped as duplicates.

        Raises BusUnavailable when the stream refuses one or does not answer for all within `timeout`.
        """
        if not messages:
            return 0
        self._batch = next(self._batches)
        self._left = len(messages)
        self._duplicates = 0
        self._errors = []
        self._done.clear()
        prefix = f"{self._inbox}.{self._batch}."
        for index, (subject, data, headers) in enumerate(messages):
            await self._nc.publish(subject, data, reply=f"{prefix}{index}", headers=headers)
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            raise BusUnavailable(
                f"JetStream acknowledged {len(messages) - self._left} of {len(messages)} events within {timeout:g} s"
            ) from None
        finally:
            self._batch = -1
        if self._errors:
            raise BusUnavailable(f"JetStream refused {len(self._errors)} events: {self._errors[0]}")
        return self._duplicates


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
        self._publisher: _Publisher | None = None
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
            wait = self._settings.fetch_wait if index == 0 else 0.0
            applied += self._dispatch_one(subscription, wait=wait)
        return applied

    def lag(self, consumer: str) -> Lag:
        pending = 0
        for subscription in self._subscriptions:
            if subscription.consumer.name == consumer and subscription.pull is not None:
                pull = subscription.pull
                info = self._run(self._consumer_info(pull.stream, pull.consumer))
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
                    for subscription in self._subscriptions:
                        if subscription.pull is not None:
                            await subscription.pull.stop()
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
                for subscription in self._subscriptions:  # subscribed on the closed connection
                    subscription.pull = None
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
            stream = self._settings.stream(subscription.family)
            try:
                await js.consumer_info(stream, name)
            except NotFoundError:
                await js.add_consumer(
                    stream,
                    ConsumerConfig(
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
            assert self._nc is not None  # noqa: S101 - _ensure connected first
            pull = _Pull(self._nc, stream=stream, consumer=name, linger=self._settings.fetch_linger)
            await pull.start()
            subscription.pull = pull

    async def _consumer_info(self, stream: str, consumer: str) -> ConsumerInfo:
        js = await self._ensure()
        info: ConsumerInfo = await js.consumer_info(stream, consumer)
        return info

    async def _publish(self, batch: Sequence[Event]) -> None:
        await self._ensure()
        if self._publisher is None or self._publisher.client is not self._nc:
            assert self._nc is not None  # noqa: S101 - _ensure connected first
            self._publisher = _Publisher(self._nc)
            await self._publisher.start()
        messages = []
        for event in batch:
            data, headers = encode(event)
            messages.append((self._settings.subject(event.type), data, headers))
        duplicates = await self._publisher.publish(messages, self._settings.timeout)
        if duplicates:
            log.info("relay_duplicates_dropped", events=duplicates)

    def _dispatch_one(self, subscription: _Subscription, *, wait: float) -> int:
        self._run(self._ensure())
        pull = subscription.pull
        if pull is None:
            raise BusUnavailable(f"no JetStream consumer bound for {subscription.consumer.name!r}")
        messages = self._run(pull.fetch(self._settings.batch_size, wait))
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
        # The acks need no answer (JetStream does not confirm them): queue them on the loop and
        # go on. A lost ack means a redelivery, which the tracking rows skip.
        self._loop.submit(_ack_all([msg for msg, _ in pairs]))
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


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("nats_background_step_failed", error=repr(future.exception()))


async def _ack_all(messages: Sequence[Msg]) -> None:
    for msg in messages:
        await msg.ack()


def _durable_name(consumer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", consumer)
