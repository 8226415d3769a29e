"""Erasure in the scaled topology: the learner gets `user.deleted` from NATS and rebuilds there."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import ContainerFactory
from tests.integration.privacy.test_export_and_erasure import ALICE, BOB, _activity, _settle
from tests.support.consents import registered
from tipwise import events
from tipwise.events.jetstream import NatsBus
from tipwise.kernel.clock import FakeClock
from tipwise.ml.pipelines import replay, stored_states
from tipwise.ml.pipelines.learner import same_state


@pytest.mark.nats
class TestErasureOverNats:
    def test_the_learner_rebuilds_without_the_person_when_user_deleted_arrives(
        self, make_container: ContainerFactory, database_url: str, nats_url: str, clock: FakeClock
    ) -> None:
        container = make_container(
            database_url, settings={"event_bus": nats_url, "nats_prefix": f"er{uuid.uuid4().hex[:8]}"}
        )
        assert isinstance(container.bus, NatsBus)
        try:
            alice, bob = registered(container, ALICE), registered(container, BOB)
            _activity(container, clock, [alice, bob], rounds=5)
            _settle(container, clock)
            with container.db.read() as session:
                applied = list(events.applied_history(session, "learner", source="outbox", metrics=None))
            expected = replay(
                [e for e in applied if e.subject != str(alice)],
                specs=container.registry.specs,
                features=container.registry.features,
                rewards=container.learner.reward_map,
            )
            before = stored_states(container.db)
            assert any(not same_state(before[n], m.state_bytes()) for n, m in expected.items())

            erasure = container.privacy.erase(user_id=alice)
            assert erasure.rows["events"] >= 1
            container.worker.run_once()

            after = stored_states(container.db)
            for name, model in expected.items():
                assert same_state(after[name], model.state_bytes()), name
            assert container.registry.versions() == {n: m.version for n, m in expected.items()}
            assert "tipwise_model_rebuild_seconds_count 1.0" in container.metrics.render().decode()
        finally:
            container.bus.delete_streams()
