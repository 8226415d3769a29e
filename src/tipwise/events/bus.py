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

from tipwise.events import repository
from tipwise.events.contracts import Consumer, Event
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession


def publish(session: WriteSession, event: Event) -> None:
    """Append `event` to the outbox; it is published when the caller's transaction commits."""
    repository.append_outbox(session, event)


def apply_exactly_once(
    session: WriteSession, consumer: Consumer, batch: Sequence[Event], *, at: datetime
) -> list[Event]:
    """Apply the events of `batch` that `consumer` has not applied yet, with their tracking rows.

    Runs inside the caller's transaction, so the effect and the record of it commit together.
    Returns the events applied now.
    """
    done = repository.seen(session, consumer=consumer.name, event_ids=[e.id for e in batch])
    fresh = [event for event in batch if event.id not in done]
    if fresh:
        consumer.apply(session, fresh)
        repository.record(session, consumer=consumer.name, event_ids=[e.id for e in fresh], at=at)
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

    def __init__(self, *, db: Database, clock: Clock, batch_size: int = 500) -> None:
        self._db = db
        self._clock = clock
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
                rows = repository.unpublished(session, limit=self._batch_size)
                if not rows:
                    return moved
                now = self._clock.now()
                repository.append_log(session, rows, at=now)
                repository.mark_published(session, [r.seq for r in rows], at=now)
                moved += len(rows)

    def dispatch(self) -> int:
        return sum(self._dispatch_one(consumer) for consumer in self._consumers)

    def _dispatch_one(self, consumer: Consumer) -> int:
        applied = 0
        while True:
            try:
                with self._db.write() as session:
                    position = repository.consumer_position(session, consumer.name)
                    batch = repository.read_log(session, after=position, limit=self._batch_size)
                    if not batch:
                        return applied
                    wanted = [event for _, event in batch if event.type in consumer.event_types]
                    fresh = apply_exactly_once(session, consumer, wanted, at=self._clock.now())
                    repository.set_consumer_position(session, consumer.name, batch[-1][0])
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
        """Yield the log's events after position `after` (up to `until`, inclusive), oldest first."""
        while True:
            with self._db.read() as session:
                batch = repository.read_log(session, after=after, limit=batch_size)
            for position, event in batch:
                if until is not None and position > until:
                    return
                yield event
            if len(batch) < batch_size:
                return
            after = batch[-1][0]

    def events_about(self, subject: str) -> list[Event]:
        """Return every event on the log whose subject is `subject`, oldest first."""
        with self._db.read() as session:
            return repository.events_about(session, subject)
