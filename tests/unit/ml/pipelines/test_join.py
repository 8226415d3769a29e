"""The learner's decode and join, on events built in memory: what they learn, withhold and count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from tipwise import events
from tipwise.kernel.ids import new_id
from tipwise.ml.pipelines import LearnerSettings
from tipwise.ml.pipelines.learner import Pending, decode, join
from tipwise.recommender import FEATURE_SPEC, FeedbackReaction, Reaction, TipDecided

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
USER = new_id()


def _decided(instance: UUID, *, personalized: bool = True) -> events.Event:
    decided = TipDecided(
        tip_instance_id=instance,
        user_id=USER,
        tip_id="walk",
        policy="linucb",
        model_version=0,
        feature_spec=FEATURE_SPEC.name,
        shared={"z": 1.0, "a": 0.5},
        action={"b": 2.0},
        propensity=0.25,
        decided_at=NOW,
        personalized=personalized,
    )
    return events.Event.create(type=events.TIP_DECIDED, subject=str(USER), time=NOW, message=decided.to_message())


def _reaction(instance: UUID, reaction: Reaction, *, at: datetime, learnable: bool = True) -> events.Event:
    message = FeedbackReaction(
        tip_instance_id=instance, user_id=USER, reaction=reaction, reacted_at=at, learnable=learnable
    ).to_message()
    return events.Event.create(type=events.FEEDBACK_REACTION, subject=str(USER), time=at, message=message)


def _defaulted(instance: UUID, *, at: datetime) -> events.Event:
    message = events.messages.RewardDefaulted(tip_instance_id=str(instance))
    return events.Event.create(type=events.REWARD_DEFAULTED, subject="system:learner", time=at, message=message)


def _keep(pending: dict[UUID, Pending], item: Pending) -> None:
    pending.setdefault(item.tip_instance_id, item)


class TestJoin:
    def test_rewards_come_from_the_reward_map_and_the_range_spans_the_reward_times(self) -> None:
        rewards = LearnerSettings().reward_map()
        first, second, third = new_id(), new_id(), new_id()
        log = [
            _decided(first),
            _decided(second),
            _decided(third),
            _reaction(second, Reaction.DONE, at=NOW + timedelta(minutes=5)),
            _defaulted(first, at=NOW + timedelta(hours=1)),
            _reaction(first, Reaction.DISMISS, at=NOW + timedelta(hours=2)),  # late: defaulted already
        ]
        pending: dict[UUID, Pending] = {}
        outcome = join(
            decode(log),
            rewards=rewards,
            remember=lambda item: _keep(pending, item),
            take=lambda key: pending.pop(key, None),
        )
        assert [e.reward for e in outcome.examples] == [rewards.reward("done"), rewards.default]
        # The named features in key order, as TipDecided.from_message gives them.
        assert list(outcome.examples[0].shared) == ["a", "z"]
        assert (outcome.reactions, outcome.timeouts, outcome.late) == (1, 1, 1)
        assert outcome.trained is not None
        assert (outcome.trained.start, outcome.trained.end) == (NOW + timedelta(minutes=5), NOW + timedelta(hours=1))
        assert outcome.last_reaction_at == NOW + timedelta(minutes=5)
        # The decision left waiting reads its time and person from its message.
        assert pending[third].decided_at == NOW
        assert pending[third].user_id == USER

    def test_decisions_and_reactions_without_consent_are_withheld(self) -> None:
        unconsented, withdrawn = new_id(), new_id()
        log = [
            _decided(unconsented, personalized=False),
            _decided(withdrawn),
            _reaction(withdrawn, Reaction.DONE, at=NOW, learnable=False),
        ]
        pending: dict[UUID, Pending] = {}
        outcome = join(
            decode(log),
            rewards=LearnerSettings().reward_map(),
            remember=lambda item: _keep(pending, item),
            take=lambda key: pending.pop(key, None),
        )
        assert outcome.examples == []
        assert outcome.withheld == 2
        assert pending == {}


class TestDecode:
    def test_a_sealed_payload_or_an_event_the_learner_does_not_learn_from_is_refused(self) -> None:
        decided = _decided(new_id())
        with pytest.raises(ValueError, match="sealed"):
            decode([replace(decided, encrypted=True)])
        delivered = events.Event.create(
            type=events.TIP_DELIVERED, subject=str(USER), time=NOW, data={"channel": "email"}
        )
        with pytest.raises(TypeError, match="does not learn"):
            decode([delivered])
