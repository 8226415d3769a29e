"""The bus port and its embedded adapter.

Producers never talk to the bus: they append to the outbox in the same
transaction as their state change (`publish`). A relay moves committed outbox
rows onto the bus. The embedded adapter's bus is the `events_log` table;
consumers pull from it after their recorded position and record a tracking
row per applied event in the same transaction as the effect, so each event is
applied exactly once even when a batch is retried.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from tipwise.events import repository, shredding
from tipwise.events.contracts import USER_DELETED, Consumer, Event
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.metrics import Metrics

# Types never sealed: `user.deleted` is published as the person's key is destroyed, and every
# consumer must still read it; it carries nothing but the id.
CLEAR_TYPES = frozenset({USER_DELETED})


def publish(session: WriteSession, event: Event) -> None:
    """Append `event` to the outbox; it is published when the caller's transaction commits.

    A payload about a person (the subject is a user id) is sealed with their data key.
    """
    if event.type not in CLEAR_TYPES and shredding.is_person(event.subject):
        key = shredding.key_for(session, event.subject, now=event.time)
        repository.append_outbox(session, event, payload=shredding.seal(key, event), encrypted=True)
    else:
        repository.append_outbox(session, event)


def open_batch(session: Session, batch: Sequence[Event], *, metrics: Metrics | None, reader: str) -> list[Event]:
    """Return `batch` with sealed payloads opened, skipping (and counting) events whose key is gone.

    A `user.deleted` in the batch first drops the person's cached key, so this process stops
    opening their events as soon as it learns of the erasure.
    """
    shredding.forget(e.subject for e in batch if e.type == USER_DELETED)
    opened, skipped = shredding.reveal(session, batch)
    if skipped and metrics is not None:
        metrics.events_shredded_skipped.labels(reader=reader).inc(skipped)
    return opened


def apply_exactly_once(
    session: WriteSession, consumer: Consumer, batch: Sequence[Event], *, at: datetime
) -> list[Event]:
    """Apply the events of `batch` that `consumer` has not applied yet, with their tracking rows.

    Runs inside the caller's transaction, so the effect and the record of it commit together.
    Returns the events applied now.
    """
    # Tracking rows first: one statement tells which events are new and records them; should the
    # consumer fail, the transaction rolls both back.
    claimed = repository.claim(session, consumer=consumer.name, event_ids=[e.id for e in batch], at=at)
    fresh = []
    for event in batch:
        if event.id in claimed:
            claimed.discard(event.id)  # an event twice in one batch is applied once
            fresh.append(event)
    if fresh:
        consumer.apply(session, fresh)
    return fresh


@dataclass(frozen=True, kw_only=True)
class Lag:
    """How far a consumer is behind the head of the log."""

    events: int
    oldest: datetime | None


class EventBus(Protocol):
    """What the application needs from a bus, whatever carries the events."""

    def subscribe(self, consumer: Consumer) -> None: ...

    def relay(self) -> int:
        """Publish committed outbox events; return how many moved."""
        ...

    def dispatch(self) -> int:
        """Deliver available events to every subscriber; return how many were applied."""
        ...

    def lag(self, consumer: str) -> Lag: ...


class EmbeddedBus:
    """The default bus: the durable log lives in the application database."""

    def __init__(self, *, db: Database, clock: Clock, batch_size: int = 2000, metrics: Metrics | None = None) -> None:
        self._db = db
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size
        self._consumers: list[Consumer] = []

    def subscribe(self, consumer: Consumer) -> None:
        if any(c.name == consumer.name for c in self._consumers):
            raise ValueError(f"a consumer named {consumer.name!r} is already subscribed")
        self._consumers.append(consumer)

    def relay(self) -> int:
        moved = 0
        while True:
            with self._db.write() as session:
                end = repository.unpublished_end(session, limit=self._batch_size)
                if end is None:
                    return moved
                now = self._clock.now()
                repository.append_to_log(session, end=end, at=now)
                count = repository.mark_relayed(session, end=end, at=now)
                moved += count
            if count < self._batch_size:
                # Drained as of this transaction: no need to take the write lock again to find out.
                return moved

    def dispatch(self) -> int:
        return sum(self._dispatch_one(consumer) for consumer in self._consumers)

    def _dispatch_one(self, consumer: Consumer) -> int:
        applied = 0
        while True:
            try:
                with self._db.write() as session:
                    position = repository.consumer_position(session, consumer.name)
                    # The next `batch_size` entries of the log; only the consumer's types are loaded.
                    end, batch = repository.read_log_of_types(
                        session, after=position, limit=self._batch_size, types=consumer.event_types
                    )
                    if end is None:
                        return applied
                    wanted = open_batch(session, batch, metrics=self._metrics, reader=consumer.name)
                    fresh = apply_exactly_once(session, consumer, wanted, at=self._clock.now())
                    repository.set_consumer_position(session, consumer.name, end)
            except BaseException:
                consumer.aborted()
                raise
            consumer.committed()
            applied += len(fresh)

    def lag(self, consumer: str) -> Lag:
        with self._db.read() as session:
            position = repository.consumer_position(session, consumer)
            head = repository.head_position(session)
            oldest = repository.oldest_after(session, position=position) if head > position else None
        return Lag(events=head - position, oldest=oldest)

    def outbox_backlog(self) -> int:
        """Return how many committed events wait in the outbox for the relay."""
        with self._db.read() as session:
            return repository.outbox_backlog(session)

    def position(self, consumer: str) -> int:
        """Return the log position up to which `consumer` has applied events."""
        with self._db.read() as session:
            return repository.consumer_position(session, consumer)

    def read(self, *, after: int = 0, until: int | None = None, batch_size: int = 5000) -> Iterator[Event]:
        """Yield the log's events after position `after` (up to `until`, inclusive), oldest first.

        Events about an erased person (their data key is gone) are skipped.
        """
        while True:
            with self._db.read() as session:
                batch = repository.read_log(session, after=after, limit=batch_size)
                if until is not None:
                    batch = [(position, event) for position, event in batch if position <= until]
                opened = open_batch(session, [e for _, e in batch], metrics=self._metrics, reader="log")
            yield from opened
            if until is not None and batch and batch[-1][0] >= until:
                return
            if len(batch) < batch_size:
                return
            after = batch[-1][0]

    def events_about(self, subject: str) -> list[Event]:
        """Return every readable event on the log whose subject is `subject`, oldest first."""
        with self._db.read() as session:
            return open_batch(session, repository.events_about(session, subject), metrics=self._metrics, reader="log")

    def applied_by(self, session: Session, consumer: str) -> Iterator[Event]:
        """Yield the readable events `consumer` has applied, in log order (a rebuild's input)."""
        yield from applied_history(session, consumer, source="log", metrics=self._metrics)


def applied_history(session: Session, consumer: str, *, source: str, metrics: Metrics | None) -> Iterator[Event]:
    """Yield the readable events `consumer` has applied, in `source` ("log" or "outbox") order."""
    after = 0
    while True:
        batch = repository.applied_by(session, consumer, source=source, after=after, limit=5000)
        if not batch:
            return
        yield from open_batch(session, [e for _, e in batch], metrics=metrics, reader="rebuild")
        after = batch[-1][0]
