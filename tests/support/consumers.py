"""A consumer for bus tests: it records each event it applies as a row (its effect), in the bus's transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import text

from tipwise import events
from tipwise.kernel.db import Database, WriteSession


def tip_id(event: events.Event) -> str:
    return str(event.data()["tip_id"])


@dataclass
class RecordingConsumer:
    """Applies `tip.decided` events; each event's `key` becomes a row, and `fail_on` a key it fails on."""

    name: str = "recorder"
    event_types: frozenset[str] = frozenset({events.TIP_DECIDED})
    key: Callable[[events.Event], str] = tip_id
    fail_on: str | None = None
    committed_batches: int = 0
    aborted_batches: int = 0
    seen: list[str] = field(default_factory=list)

    def apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        for event in batch:
            key = self.key(event)
            session.execute(
                text("INSERT INTO events_consumer_position (consumer, position) VALUES (:c, 0)"), {"c": f"effect:{key}"}
            )
            if self.fail_on == key:
                raise RuntimeError("consumer failed")
        self.seen.extend(self.key(event) for event in batch)

    def committed(self) -> None:
        self.committed_batches += 1

    def aborted(self) -> None:
        self.aborted_batches += 1


def effects(db: Database) -> list[str]:
    """Return the keys of the events consumers applied, sorted."""
    with db.read() as session:
        rows = session.execute(
            text("SELECT consumer FROM events_consumer_position WHERE consumer LIKE 'effect:%' ORDER BY consumer")
        )
        return [r[0].removeprefix("effect:") for r in rows]
