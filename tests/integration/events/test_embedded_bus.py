"""The embedded bus: outbox -> log -> consumers, each event applied exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text

from tipwise import events
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database, WriteSession


@dataclass
class RecordingConsumer:
    """Writes one row per applied event (its effect), in the bus's transaction."""

    name: str = "recorder"
    event_types: frozenset[str] = frozenset({events.TIP_DECIDED})
    fail_on: str | None = None
    committed_batches: int = 0
    aborted_batches: int = 0
    seen: list[str] = field(default_factory=list)

    def apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        for event in batch:
            session.execute(
                text("INSERT INTO events_consumer_position (consumer, position) VALUES (:c, 0)"),
                {"c": f"effect:{event.data()['tip_id']}"},
            )
            if self.fail_on == event.data()["tip_id"]:
                raise RuntimeError("consumer failed")
            self.seen.append(event.data()["tip_id"])

    def committed(self) -> None:
        self.committed_batches += 1

    def aborted(self) -> None:
        self.aborted_batches += 1


def _publish(db: Database, clock: FakeClock, *ns: str) -> None:
    """Publish one `tip.decided` per name in `ns`, carrying it as `tip_id`."""
    with db.write() as session:
        for n in ns:
            event = events.Event.create(type=events.TIP_DECIDED, subject="user-1", time=clock.now(), data={"tip_id": n})
            events.publish(session, event)


def _effects(db: Database) -> list[str]:
    with db.read() as session:
        rows = session.execute(
            text("SELECT consumer FROM events_consumer_position WHERE consumer LIKE 'effect:%' ORDER BY consumer")
        )
        return [r[0].removeprefix("effect:") for r in rows]


@pytest.fixture
def bus(migrated: Database, clock: FakeClock) -> events.EmbeddedBus:
    return events.EmbeddedBus(db=migrated, clock=clock, batch_size=2)


class TestEmbeddedBus:
    def test_published_events_reach_the_consumer_once_in_order(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer()
        bus.subscribe(consumer)
        _publish(migrated, clock, "a", "b", "c")
        with migrated.write() as session:
            reaction = {"reaction": "done", "reacted_at": clock.now()}
            events.publish(
                session,
                events.Event.create(type=events.FEEDBACK_REACTION, subject="user-1", time=clock.now(), data=reaction),
            )

        assert bus.relay() == 4
        assert bus.dispatch() == 3
        assert consumer.seen == ["a", "b", "c"]
        assert bus.relay() == 0
        assert bus.dispatch() == 0
        assert _effects(migrated) == ["a", "b", "c"]
        assert bus.lag("recorder").events == 0

    def test_nothing_reaches_consumers_before_the_outbox_is_relayed(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer()
        bus.subscribe(consumer)
        _publish(migrated, clock, "a")
        assert bus.dispatch() == 0
        assert bus.lag("recorder").events == 0
        bus.relay()
        lag = bus.lag("recorder")
        assert lag.events == 1
        assert lag.oldest == clock.now()

    def test_a_rolled_back_publish_leaves_nothing_on_the_log(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        def failing_state_change() -> None:
            with migrated.write() as session:
                events.publish(session, events.Event.create(type="tip.decided", subject="u", time=clock.now(), data={}))
                raise RuntimeError("the state change failed")

        with pytest.raises(RuntimeError):
            failing_state_change()
        assert bus.relay() == 0

    def test_a_failing_batch_applies_nothing_and_is_retried_from_the_same_place(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(fail_on="b")
        bus.subscribe(consumer)
        _publish(migrated, clock, "a", "b", "c")
        bus.relay()

        with pytest.raises(RuntimeError, match="consumer failed"):
            bus.dispatch()
        assert consumer.aborted_batches == 1
        assert _effects(migrated) == []
        assert bus.lag("recorder").events == 3

        consumer.fail_on = None
        consumer.seen.clear()
        assert bus.dispatch() == 3
        assert _effects(migrated) == ["a", "b", "c"]

    def test_a_second_consumer_catches_up_from_the_start_of_the_log(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        first = RecordingConsumer(name="first")
        bus.subscribe(first)
        _publish(migrated, clock, "a")
        bus.relay()
        bus.dispatch()
        late = RecordingConsumer(name="late", event_types=frozenset({events.TIP_DECIDED}))
        late.apply = lambda session, batch: late.seen.extend(e.data()["tip_id"] for e in batch)  # type: ignore[method-assign]
        bus.subscribe(late)
        assert bus.dispatch() == 1
        assert late.seen == ["a"]

    def test_subscribing_two_consumers_with_one_name_is_refused(self, bus: events.EmbeddedBus) -> None:
        bus.subscribe(RecordingConsumer())
        with pytest.raises(ValueError, match="already subscribed"):
            bus.subscribe(RecordingConsumer())

    def test_events_about_a_subject_come_back_oldest_first(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        _publish(migrated, clock, "a", "b")
        bus.relay()
        assert [e.data()["tip_id"] for e in bus.events_about("user-1")] == ["a", "b"]
        assert bus.events_about("someone-else") == []

    def test_the_log_keeps_the_payload_bytes_and_trace_id_the_envelope_carries(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        published = events.Event.create(
            type=events.TIP_DELIVERED,
            subject="user-1",
            time=clock.now(),
            data={"channel": "email", "delivered_at": clock.now()},
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        )
        with migrated.write() as session:
            events.publish(session, published)
        bus.relay()
        [logged] = bus.events_about("user-1")
        assert logged == published
        assert logged.to_envelope() == published.to_envelope()
        assert events.Event.from_envelope(logged.to_envelope()).trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
