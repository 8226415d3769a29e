"""Purpose binding in decisions and learning, on SQLite and PostgreSQL.

After a withdrawal, the next decision's `context_snapshot` holds none of that
purpose's features; without personalization, decisions are non-personalized
and nothing is learned from the person; without model training, their
examples stay out of the shared model.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.decisions import shown
from tipwise import events
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.ml.pipelines import replay
from tipwise.ml.pipelines.models import PendingDecisionRow
from tipwise.profile import CONSENT_WORDING_VERSION, ConsentsPut, Purpose
from tipwise.recommender import FeedbackRequest, NextTipOut, Reaction
from tipwise.recommender.domain.features import FEATURE_PURPOSES, PERSONAL_FEATURES
from tipwise.recommender.models import TipInstanceRow


@pytest.fixture
def container(make_container: ContainerFactory, database_url: str) -> Container:
    return make_container(database_url)


def _decide(container: Container, user: uuid.UUID) -> NextTipOut:
    decision = container.recommender.next_tip(user_id=user)
    assert decision is not None
    return decision


def _react(container: Container, user: uuid.UUID, decision: NextTipOut, reaction: Reaction = Reaction.DONE) -> None:
    container.recommender.record_feedback(
        user_id=user,
        request=FeedbackRequest(
            tip_instance_id=decision.tip_instance_id, reaction=reaction, idempotency_key=str(decision.tip_instance_id)
        ),
    )


def _snapshot_features(container: Container, decision: NextTipOut) -> set[str]:
    with container.db.read() as session:
        row = session.get(TipInstanceRow, decision.tip_instance_id)
        assert row is not None
        snapshot = row.context_snapshot
    names = set(snapshot["shared"])
    for features in snapshot["actions"].values():
        names |= set(features)
    return names


def _decided_event(container: Container, decision: NextTipOut) -> dict[str, Any]:
    container.worker.run_once(jobs=False)
    for event in container.embedded_log().read():
        if event.type == events.TIP_DECIDED and event.data()["tip_instance_id"] == str(decision.tip_instance_id):
            return event.data()
    raise AssertionError("no tip.decided event for the decision")


def _withdraw(container: Container, user: uuid.UUID, *purposes: Purpose) -> None:
    container.profile.record_consents(
        user_id=user,
        decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes=dict.fromkeys(purposes, False)),
    )


def _needing(purpose: Purpose, names: set[str]) -> set[str]:
    return {name for name in names if FEATURE_PURPOSES[name] is purpose}


class TestPurposeBinding:
    def test_after_withdrawing_personalization_the_next_snapshot_has_none_of_its_features(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = registered(container, "withdraw@example.com")
        first = _decide(container, user)
        _react(container, user, first)
        clock.advance(timedelta(hours=2))
        before = _decide(container, user)
        # With consent, the person's history is a feature (so the check below can fail).
        assert _needing(Purpose.PERSONALIZATION, _snapshot_features(container, before))
        assert before.personalized is True

        _withdraw(container, user, Purpose.PERSONALIZATION)
        clock.advance(timedelta(hours=2))
        after = _decide(container, user)

        features = _snapshot_features(container, after)
        assert features, "the snapshot still holds the context and tip features"
        assert _needing(Purpose.PERSONALIZATION, features) == set()
        assert not features & set(PERSONAL_FEATURES)
        assert after.personalized is False
        with container.db.read() as session:
            row = session.get(TipInstanceRow, after.tip_instance_id)
            assert row is not None
            assert Purpose.PERSONALIZATION.value not in row.context_snapshot["purposes"]
        decided = _decided_event(container, after)
        assert decided["personalized"] is False
        assert not set(decided["action"]) & set(PERSONAL_FEATURES)

    def test_a_person_who_never_consented_gets_non_personalized_tips(self, container: Container) -> None:
        user = registered(container, "never@example.com", granted=False)
        decision = _decide(container, user)
        assert decision.personalized is False
        assert not _snapshot_features(container, decision) & set(PERSONAL_FEATURES)


class TestNoLearningWithoutConsent:
    def _loop(self, container: Container, clock: FakeClock, user: uuid.UUID, rounds: int = 6) -> None:
        for _ in range(rounds):
            decision = _decide(container, user)
            shown(decision)
            _react(container, user, decision)
            container.worker.run_once()
            clock.advance(timedelta(minutes=45))

    def test_without_personalization_nothing_is_learned_from_the_person(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = registered(container, "private@example.com")
        _withdraw(container, user, Purpose.PERSONALIZATION)
        self._loop(container, clock, user)
        clock.advance(container.learner.reward_map.wait + timedelta(minutes=1))
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 0
        with container.db.read() as session:
            assert session.scalar(select(func.count()).select_from(PendingDecisionRow)) == 0

        # A consenting person in the same installation is learned from: the loop itself works.
        other = registered(container, "open@example.com")
        self._loop(container, clock, other, rounds=3)
        assert container.registry.versions()["linucb"] == 3

        # Replay applies the same rule: the log alone rebuilds the same models.
        rebuilt = replay(
            container.embedded_log().read(until=container.embedded_log().position("learner")),
            specs=container.registry.specs,
            features=container.registry.features,
            rewards=container.learner.reward_map,
        )
        assert {name: model.version for name, model in rebuilt.items()} == container.registry.versions()

    def test_without_model_training_the_examples_stay_out_of_the_shared_model(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = registered(container, "personal-only@example.com")
        _withdraw(container, user, Purpose.MODEL_TRAINING)
        decision = _decide(container, user)
        assert decision.personalized is True  # personalization is still granted
        self._loop(container, clock, user)
        assert container.registry.versions()["linucb"] == 0
        # Nor do they feed the off-policy evaluation that chooses the shared policy.
        logged = container.recommender.logged_decisions()
        assert len(logged) == 7
        assert not any(decision.model_training for decision in logged)
        with pytest.raises(ValueError, match="the decision log is empty"):
            container.evaluate()

    def test_a_withdrawal_before_the_reaction_drops_the_pending_decision_unlearned(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = registered(container, "changed-mind@example.com")
        decision = _decide(container, user)
        container.worker.run_once()
        with container.db.read() as session:
            assert session.scalar(select(func.count()).select_from(PendingDecisionRow)) == 1
        _withdraw(container, user, Purpose.PERSONALIZATION)
        _react(container, user, decision)
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 0
        with container.db.read() as session:
            assert session.scalar(select(func.count()).select_from(PendingDecisionRow)) == 0
