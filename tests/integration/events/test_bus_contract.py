"""The bus port's contract, run against the embedded adapter and against real NATS JetStream.

Each test runs on SQLite and PostgreSQL (the outbox and tracking rows live there) and with each
adapter. What differs between adapters is reached through the small `Harness` below: how to drain
the bus, and how to make it hand a consumer events it has already applied.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import pytest

from tests.support.consumers import RecordingConsumer, effects
from tipwise import events
from tipwise.events import repository
from tipwise.events.bus import apply_exactly_once
from tipwise.events.jetstream import NatsBus, NatsSettings
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.kernel.metrics import Metrics


def _n(event: events.Event) -> str:
    return str(event.data()["tip_instance_id"])[-1]


def _event(n: str, clock: FakeClock, *, type: str = events.TIP_DECIDED) -> events.Event:
    return events.Event.create(
        type=type,
        subject="user-1",
        time=clock.now(),
        data={"tip_instance_id": f"00000000-0000-0000-0000-00000000000{n}"},
    )


def _publish(db: Database, clock: FakeClock, *ns: str, type: str = events.TIP_DECIDED) -> None:
    with db.write() as session:
        for n in ns:
            events.publish(session, _event(n, clock, type=type))


class Harness(Protocol):
    @property
    def bus(self) -> events.EventBus: ...

    def drain(self) -> int:
        """Relay and dispatch until nothing moves; return how many events consumers applied."""
        ...

    def redeliver(self, consumer: str) -> None:
        """Make the bus hand `consumer` everything again, as after a crash before it acknowledged."""
        ...

    def publish_unmarked(self) -> None:
        """Put the outbox on the bus without marking it sent, as a relay that crashed in between."""
        ...


@dataclass
class EmbeddedHarness:
    bus: events.EmbeddedBus
    db: Database
    clock: FakeClock

    def drain(self) -> int:
        return _drain(self.bus, quiet_rounds=1)

    def redeliver(self, consumer: str) -> None:
        with self.db.write() as session:
            repository.set_consumer_position(session, consumer, 0)

    def publish_unmarked(self) -> None:
        with self.db.write() as session:
            end = repository.unpublished_end(session, limit=100)
            assert end is not None
            repository.append_to_log(session, end=end, at=self.clock.now())


@dataclass
class NatsHarness:
    bus: NatsBus
    db: Database
    clock: FakeClock
    settings: NatsSettings
    metrics: Metrics

    def drain(self) -> int:
        # Two quiet rounds in a row: nothing is in flight any more.
        return _drain(self.bus, quiet_rounds=2)

    def redeliver(self, consumer: str) -> None:
        # A new durable consumer of the same name starts from the first message, as a consumer
        # whose acks were lost would get its messages again.
        fresh = NatsBus(settings=self.settings, db=self.db, clock=self.clock)
        try:
            fresh._run(_delete_consumers(fresh, consumer))
        finally:
            fresh.close()
        for subscription in self.bus._subscriptions:
            subscription.pull = None

    def publish_unmarked(self) -> None:
        with self.db.read() as session:
            batch = [event for _, event in repository.unpublished_events(session, limit=100)]
        self.bus._run(self.bus._publish(batch))


def _drain(bus: events.EventBus, *, quiet_rounds: int) -> int:
    applied = quiet = 0
    while quiet < quiet_rounds:
        moved = bus.relay()
        done = bus.dispatch()
        applied += done
        quiet = quiet + 1 if not (moved or done) else 0
    return applied


async def _delete_consumers(bus: NatsBus, consumer: str) -> None:
    js = await bus._ensure()
    for family in ["decisions", "signals", "privacy", "other"]:
        try:
            await js.delete_consumer(bus._settings.stream(family), consumer)
        except Exception:  # noqa: S110 - not every stream has this consumer
            pass


@pytest.fixture(params=["embedded", pytest.param("nats", marks=pytest.mark.nats)])
def harness(request: pytest.FixtureRequest, migrated: Database, clock: FakeClock) -> Harness:
    if request.param == "embedded":
        return EmbeddedHarness(bus=events.EmbeddedBus(db=migrated, clock=clock, batch_size=2), db=migrated, clock=clock)
    nats: NatsHarness = request.getfixturevalue("nats_harness")
    return nats


@pytest.fixture
def nats_harness(
    request: pytest.FixtureRequest, nats_url: str, migrated: Database, clock: FakeClock
) -> Iterator[NatsHarness]:
    # The contract tests retry failing events for as long as they need; the dead-letter test gives up after 3.
    attempts = request.node.get_closest_marker("max_attempts")
    settings = NatsSettings(
        url=nats_url,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        batch_size=2,
        fetch_wait=0.2,
        retry_delays=(0.05,),
        max_attempts=attempts.args[0] if attempts else 1000,
    )
    metrics = Metrics()
    bus = NatsBus(settings=settings, db=migrated, clock=clock, metrics=metrics)
    try:
        yield NatsHarness(bus=bus, db=migrated, clock=clock, settings=settings, metrics=metrics)
    finally:
        bus.delete_streams()
        bus.close()


class TestBusContract:
    def test_published_events_reach_the_consumer_once_in_order(self, harness: Harness, migrated: Database) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        _publish(migrated, FakeClock(), "1", "2", "3")
        _publish(migrated, FakeClock(), "9", type=events.FEEDBACK_REACTION)

        assert harness.drain() == 3
        assert consumer.seen == ["1", "2", "3"]
        assert harness.drain() == 0
        assert effects(migrated) == ["1", "2", "3"]
        assert harness.bus.lag("recorder").events == 0

    def test_nothing_reaches_consumers_before_the_outbox_is_relayed(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        _publish(migrated, clock, "1")
        assert harness.bus.dispatch() == 0
        assert harness.bus.relay() == 1
        assert harness.bus.lag("recorder").events == 1
        assert harness.drain() == 1

    def test_a_rolled_back_publish_leaves_nothing_to_relay(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        def failing_state_change() -> None:
            with migrated.write() as session:
                events.publish(session, _event("1", clock))
                raise RuntimeError("the state change failed")

        with pytest.raises(RuntimeError):
            failing_state_change()
        assert harness.bus.relay() == 0

    def test_a_failing_event_is_not_applied_and_comes_back_until_it_succeeds(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n, fail_on="2")
        harness.bus.subscribe(consumer)
        _publish(migrated, clock, "1", "2", "3")

        with pytest.raises(RuntimeError, match="consumer failed") if isinstance(harness, EmbeddedHarness) else _noop():
            harness.drain()
        assert consumer.aborted_batches >= 1
        assert "2" not in effects(migrated)

        consumer.fail_on = None
        _eventually(lambda: harness.drain() >= 0 and effects(migrated) == ["1", "2", "3"])
        assert sorted(consumer.seen) == ["1", "2", "3"]

    def test_events_handed_over_again_are_not_applied_twice(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        _publish(migrated, clock, "1", "2")
        assert harness.drain() == 2

        harness.redeliver("recorder")
        assert harness.drain() == 0
        assert effects(migrated) == ["1", "2"]

    def test_a_relay_that_crashed_before_marking_does_not_duplicate_events(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        _publish(migrated, clock, "1", "2")
        harness.publish_unmarked()
        assert harness.drain() == 2
        assert harness.drain() == 0
        assert consumer.seen == ["1", "2"]

    def test_a_second_consumer_catches_up_from_the_start(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        first = RecordingConsumer(key=_n, name="first")
        harness.bus.subscribe(first)
        _publish(migrated, clock, "1")
        harness.drain()

        late = RecordingConsumer(key=_n, name="late")
        late.apply = lambda session, batch: late.seen.extend(_n(e) for e in batch)  # type: ignore[method-assign]
        harness.bus.subscribe(late)
        assert harness.drain() == 1
        assert late.seen == ["1"]

    def test_subscribing_two_consumers_with_one_name_is_refused(self, harness: Harness) -> None:
        harness.bus.subscribe(RecordingConsumer(key=_n))
        with pytest.raises(ValueError, match="already subscribed"):
            harness.bus.subscribe(RecordingConsumer(key=_n))


class TestCryptoShredding:
    """Events about a person travel sealed; once their key is destroyed no bus hands them out."""

    def test_a_sealed_event_reaches_the_consumer_in_clear(self, harness: Harness, migrated: Database) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        person = str(uuid.uuid4())
        with migrated.write() as session:
            events.publish(session, _about(person, "1"))
        with migrated.read() as session:
            [(_, raw)] = repository.unpublished_events(session, limit=10)
        assert raw.encrypted
        assert b"00000000-0000-0000-0000-000000000001" not in raw.payload

        assert harness.drain() == 1
        assert consumer.seen == ["1"]

    def test_events_whose_key_is_gone_are_skipped_and_acknowledged(
        self, harness: Harness, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n)
        harness.bus.subscribe(consumer)
        erased, kept = str(uuid.uuid4()), str(uuid.uuid4())
        with migrated.write() as session:
            events.publish(session, _about(erased, "1"))
            events.publish(session, _about(kept, "2"))
            events.publish(session, _about(erased, "3"))
        # The events are on the bus (the log, or a JetStream stream) when the person is erased.
        harness.bus.relay()
        with migrated.write() as session:
            assert events.shredding.erase(session, erased) == 1

        assert harness.drain() == 1
        assert consumer.seen == ["2"]
        assert effects(migrated) == ["2"]
        # Skipped events were acknowledged: nothing comes back, nothing is pending.
        assert harness.drain() == 0
        assert harness.bus.lag(consumer.name).events == 0
        if isinstance(harness, NatsHarness):
            rendered = harness.metrics.render().decode()
            assert 'tipwise_events_shredded_skipped_total{reader="recorder"} 2.0' in rendered


def _about(person: str, n: str) -> events.Event:
    return events.Event.create(
        type=events.TIP_DECIDED,
        subject=person,
        time=FakeClock().now(),
        data={"tip_instance_id": f"00000000-0000-0000-0000-00000000000{n}"},
    )


@pytest.mark.nats
@pytest.mark.max_attempts(3)
class TestNatsDeadLetters:
    def test_an_event_that_keeps_failing_goes_to_the_dead_letter_subject_and_the_rest_flows(
        self, nats_harness: NatsHarness, migrated: Database, clock: FakeClock
    ) -> None:
        harness = nats_harness
        consumer = RecordingConsumer(key=_n, fail_on="2")
        harness.bus.subscribe(consumer)
        _publish(migrated, clock, "1", "2", "3")

        _eventually(lambda: harness.drain() >= 0 and harness.bus.dead_letters() == 1)
        assert effects(migrated) == ["1", "3"]
        rendered = harness.metrics.render().decode()
        assert 'tipwise_events_dead_lettered_total{consumer="recorder"} 1.0' in rendered
        # two failed deliveries went back to the bus before the third went to the dead letters
        assert 'tipwise_events_redelivered_total{consumer="recorder"} 2.0' in rendered

        _publish(migrated, clock, "4")
        assert harness.drain() == 1
        assert effects(migrated) == ["1", "3", "4"]


@pytest.mark.nats
class TestNatsBatches:
    def test_events_fetched_ahead_are_handed_back_at_once_when_the_bus_closes(
        self, nats_harness: NatsHarness, migrated: Database, clock: FakeClock
    ) -> None:
        first = NatsBus(settings=nats_harness.settings, db=migrated, clock=clock)
        consumer = RecordingConsumer(key=_n)
        first.subscribe(consumer)
        _publish(migrated, clock, "1", "2", "3")
        assert first.relay() == 3
        # Batches of 2: the fetch that returns "1" and "2" asks for the next batch, "3".
        assert first.dispatch() == 2
        first.close()

        second = NatsBus(settings=nats_harness.settings, db=migrated, clock=clock)
        successor = RecordingConsumer(key=_n)
        second.subscribe(successor)
        try:
            # Not after JetStream's 60 s ack wait: the closing bus gave "3" back.
            _eventually(lambda: second.dispatch() >= 0 and successor.seen == ["3"], timeout=10)
        finally:
            second.close()
        assert effects(migrated) == ["1", "2", "3"]


class _noop:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _eventually(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class TestApplyExactlyOnce:
    """The tracking rows both adapters write, in the consumer's transaction."""

    def test_an_event_twice_in_a_batch_or_applied_before_is_applied_once(
        self, migrated: Database, clock: FakeClock
    ) -> None:
        consumer = RecordingConsumer(key=_n)
        first, second = _event("1", clock), _event("2", clock)
        with migrated.write() as session:
            applied = apply_exactly_once(session, consumer, [first, first, second], at=clock.now())
        assert applied == [first, second]
        with migrated.write() as session:
            applied = apply_exactly_once(session, consumer, [second, _event("3", clock)], at=clock.now())
        assert [_n(e) for e in applied] == ["3"]
        assert consumer.seen == ["1", "2", "3"]
        assert effects(migrated) == ["1", "2", "3"]

    def test_a_failing_consumer_leaves_no_tracking_rows(self, migrated: Database, clock: FakeClock) -> None:
        consumer = RecordingConsumer(key=_n, fail_on="2")
        batch = [_event("1", clock), _event("2", clock)]
        with pytest.raises(RuntimeError, match="consumer failed"), migrated.write() as session:
            apply_exactly_once(session, consumer, batch, at=clock.now())
        consumer.fail_on = None
        with migrated.write() as session:
            applied = apply_exactly_once(session, consumer, batch, at=clock.now())
        assert applied == batch
        assert effects(migrated) == ["1", "2"]
