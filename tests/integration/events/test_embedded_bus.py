"""What only the embedded bus does; the bus port's contract is in test_bus_contract.py.

The embedded bus applies a batch whole or not at all, knows the age of the oldest unapplied
event, and keeps the log it can be read back from.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest

from tests.support.consumers import RecordingConsumer, effects
from tipwise import events
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database


def _publish(db: Database, clock: FakeClock, *ns: str) -> None:
    """Publish one `tip.decided` per name in `ns`, carrying it as `tip_id`."""
    with db.write() as session:
        for n in ns:
            event = events.Event.create(type=events.TIP_DECIDED, subject="user-1", time=clock.now(), data={"tip_id": n})
            events.publish(session, event)


def _stored(db: Database, moment: datetime) -> str:
    """The text the database holds for `moment` written through SQLAlchemy (an ORM tracking row)."""
    from sqlalchemy import delete, text

    from tipwise.events.models import TrackingRow
    from tipwise.kernel.ids import new_id

    with db.write() as session:
        session.add(TrackingRow(consumer="stored-form", event_id=new_id(), applied_at=moment))
        session.flush()
        stored = session.scalar(
            text("SELECT CAST(applied_at AS TEXT) FROM events_tracking WHERE consumer = 'stored-form'")
        )
        session.execute(delete(TrackingRow).where(TrackingRow.consumer == "stored-form"))
    assert isinstance(stored, str)
    return stored


@pytest.fixture
def bus(migrated: Database, clock: FakeClock) -> events.EmbeddedBus:
    return events.EmbeddedBus(db=migrated, clock=clock, batch_size=2)


class TestEmbeddedBus:
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
        assert effects(migrated) == []
        assert bus.lag("recorder").events == 3

        consumer.fail_on = None
        consumer.seen.clear()
        assert bus.dispatch() == 3
        assert effects(migrated) == ["a", "b", "c"]

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

    def test_a_consumer_gets_only_its_types_and_moves_past_the_others_window_by_window(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer()
        bus.subscribe(consumer)
        _publish(migrated, clock, "a")
        with migrated.write() as session:
            for _ in range(3):
                # Not the consumer's type: read past, never handed over.
                events.publish(
                    session,
                    events.Event.create(
                        type=events.TIP_DELIVERED, subject="user-1", time=clock.now(), data={"channel": "email"}
                    ),
                )
        _publish(migrated, clock, "b")
        bus.relay()

        assert bus.dispatch() == 2
        assert consumer.seen == ["a", "b"]
        # Windows of two log entries (the batch size): a; then two others; then the last other and b.
        assert consumer.committed_batches == 3
        assert bus.lag("recorder").events == 0
        assert bus.position("recorder") == 5
        assert bus.dispatch() == 0


class TestClaim:
    def test_each_event_id_is_claimed_once_and_stored_as_any_row_is(self, migrated: Database, clock: FakeClock) -> None:
        from sqlalchemy import select

        from tipwise.events import repository
        from tipwise.events.models import TrackingRow
        from tipwise.kernel.ids import new_id

        first, second, third = new_id(), new_id(), new_id()
        with migrated.write() as session:
            # An id twice in one batch is claimed once.
            assert repository.claim(session, consumer="c", event_ids=[first, second, first], at=clock.now()) == {
                first,
                second,
            }
        with migrated.write() as session:
            assert repository.claim(session, consumer="c", event_ids=[second, third], at=clock.now()) == {third}
            # Another consumer's claims are its own.
            assert repository.claim(session, consumer="d", event_ids=[first], at=clock.now()) == {first}
        with migrated.read() as session:
            rows = session.execute(select(TrackingRow.consumer, TrackingRow.event_id, TrackingRow.applied_at)).all()
        now = clock.now()
        expected = [("c", str(first), now), ("c", str(second), now), ("c", str(third), now), ("d", str(first), now)]
        assert sorted((consumer, str(event_id), at) for consumer, event_id, at in rows) == sorted(expected)

    def test_a_claimed_row_is_stored_in_the_form_of_an_orm_insert(self, migrated: Database, clock: FakeClock) -> None:
        """The batch insert writes what SQLAlchemy writes: on SQLite, the same text for the same instant."""
        from sqlalchemy import text

        from tipwise.events import repository
        from tipwise.events.models import TrackingRow
        from tipwise.kernel.ids import new_id

        at = clock.now() + timedelta(microseconds=123_456)
        claimed, inserted = new_id(), new_id()
        with migrated.write() as session:
            repository.claim(session, consumer="batch", event_ids=[claimed], at=at)
            session.add(TrackingRow(consumer="orm", event_id=inserted, applied_at=at))
        with migrated.read() as session:
            stored: dict[str, str] = dict(
                session.execute(text("SELECT consumer, CAST(applied_at AS TEXT) FROM events_tracking")).all()
            )
            ids: dict[str, str] = dict(
                session.execute(text("SELECT consumer, CAST(event_id AS TEXT) FROM events_tracking")).all()
            )
        assert stored["batch"] == stored["orm"]
        assert ids["batch"].replace("-", "") == claimed.hex
        assert ids["orm"].replace("-", "") == inserted.hex


class TestReadingTheLog:
    def test_a_window_of_some_types_holds_exactly_those_events_of_the_log_in_order(
        self, migrated: Database, clock: FakeClock
    ) -> None:
        """`read_log_of_types` (through the driver on SQLite) gives the very events `read_log` gives, filtered."""
        from tipwise.events import repository

        with migrated.write() as session:
            for n in range(7):
                kind, data = (
                    (events.TIP_DECIDED, {"tip_id": f"tip-{n}"})
                    if n % 3
                    else (events.TIP_DELIVERED, {"channel": "email"})
                )
                # Sealed (a person's id as subject) and clear events, at distinct microseconds.
                subject = str(uuid.UUID(int=n % 2 + 1)) if n % 2 else "system:test"
                moment = clock.now() + timedelta(seconds=n, microseconds=n * 1001)
                events.publish(session, events.Event.create(type=kind, subject=subject, time=moment, data=data))
        events.EmbeddedBus(db=migrated, clock=clock).relay()

        with migrated.read() as session:
            everything = repository.read_log(session, after=0, limit=100)
            end, decided = repository.read_log_of_types(session, after=1, limit=5, types={events.TIP_DECIDED})
            _, none = repository.read_log_of_types(session, after=7, limit=5, types={events.TIP_DECIDED})
            nothing_after = repository.read_log_of_types(session, after=7, limit=5, types={events.TIP_DELIVERED})

        window = [event for position, event in everything if 1 < position <= 6]
        assert end == 6
        assert decided == [event for event in window if event.type == events.TIP_DECIDED]
        assert [event.encrypted for event in decided] == [True, False, False, True]  # n = 1, 2, 4, 5
        assert none == []
        assert nothing_after == (None, [])


class TestRelay:
    def test_a_relay_moves_every_committed_event_full_batches_and_the_rest(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer()
        bus.subscribe(consumer)
        _publish(migrated, clock, "a", "b", "c", "d", "e")

        assert bus.relay() == 5
        assert bus.relay() == 0
        assert bus.dispatch() == 5
        assert effects(migrated) == ["a", "b", "c", "d", "e"]

    def test_relayed_events_keep_the_outbox_order_and_their_times_are_stored_as_any_written(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        from sqlalchemy import text

        _publish(migrated, clock, "a", "b", "c")
        clock.advance(timedelta(seconds=1, microseconds=250))
        assert bus.relay() == 3

        with migrated.read() as session:
            outbox = session.execute(
                text("SELECT event_id, CAST(time AS TEXT), CAST(published_at AS TEXT) FROM events_outbox ORDER BY seq")
            ).all()
            log = session.execute(
                text("SELECT event_id, CAST(time AS TEXT), CAST(appended_at AS TEXT) FROM events_log ORDER BY position")
            ).all()
            read = [event for _, event in events.repository.read_log(session, after=0, limit=10)]
        assert [row[0] for row in log] == [row[0] for row in outbox]
        assert [row[1] for row in log] == [row[1] for row in outbox]
        # Written in the statement, in the form of any other write of the same instant.
        assert {row[2] for row in log} == {row[2] for row in outbox} == {_stored(migrated, clock.now())}
        assert [event.time for event in read] == [clock.now() - timedelta(seconds=1, microseconds=250)] * 3

    def test_a_relay_of_exactly_one_batch_leaves_nothing_behind(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        _publish(migrated, clock, "a", "b")

        assert bus.relay() == 2
        assert bus.outbox_backlog() == 0


class TestPacedWorker:
    """The worker as one process runs it on the embedded bus: one pass per round, paced."""

    def test_a_round_relays_and_applies_what_was_committed_and_reports_it(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        bus.subscribe(RecordingConsumer())
        worker = events.Worker(bus=bus, duty=0.25)
        _publish(migrated, clock, "a", "b", "c")

        assert worker.run_round(jobs=False) == 6  # three relayed, three applied
        assert effects(migrated) == ["a", "b", "c"]
        assert worker.run_round(jobs=False) == 0

    def test_a_round_with_nothing_to_move_runs_the_jobs_and_counts_what_they_published(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        bus.subscribe(RecordingConsumer())
        worker = events.Worker(bus=bus, duty=0.25)

        def job() -> int:
            _publish(migrated, clock, "from-a-job")
            return 1

        worker.add_job(job)

        assert worker.run_round(jobs=False) == 0
        assert worker.run_round(jobs=True) == 1
        # What the job published goes in the next round, which the background thread runs because of that count.
        assert worker.run_round(jobs=False) == 2
        assert effects(migrated) == ["from-a-job"]

    def test_the_background_thread_applies_every_burst_published(
        self, bus: events.EmbeddedBus, migrated: Database, clock: FakeClock
    ) -> None:
        bus.subscribe(RecordingConsumer())
        worker = events.Worker(bus=bus, duty=0.25, coalesce=0.001, max_pause=0.01)
        worker.start()
        try:
            expected = []
            for burst in range(5):
                names = [f"{burst}-{n}" for n in range(3)]
                _publish(migrated, clock, *names)
                expected.extend(names)
                worker.wake()
            deadline = threading.Event()
            for _ in range(1000):
                if effects(migrated) == sorted(expected):
                    break
                deadline.wait(0.01)
        finally:
            worker.stop()

        assert effects(migrated) == sorted(expected)

    @pytest.mark.parametrize("duty", [0.0, -0.5, 1.5])
    def test_a_duty_outside_zero_to_one_is_refused(self, bus: events.EmbeddedBus, duty: float) -> None:
        with pytest.raises(ValueError, match="duty"):
            events.Worker(bus=bus, duty=duty)
