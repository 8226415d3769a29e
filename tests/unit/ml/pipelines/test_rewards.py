"""Unit tests of the reaction-to-reward map."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tipwise.ml.pipelines import REACTIONS, RewardMap
from tipwise.recommender import Reaction


class TestRewardMap:
    @pytest.mark.parametrize(
        ("reaction", "reward"),
        [("done", 1.0), ("snooze", 0.3), ("dismiss", 0.0), ("not_for_me", -0.5)],
    )
    def test_default_map_rewards_each_reaction(self, reaction: str, reward: float) -> None:
        assert RewardMap().reward(reaction) == reward

    def test_default_map_gives_zero_when_no_reaction_comes_within_a_day(self) -> None:
        rewards = RewardMap()

        assert rewards.default == 0.0
        assert rewards.wait == timedelta(hours=24)
        assert rewards.version

    def test_reactions_are_exactly_those_a_person_can_give(self) -> None:
        assert set(REACTIONS) == {reaction.value for reaction in Reaction}

    def test_map_missing_a_reaction_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="reward map must cover exactly"):
            RewardMap(values={"done": 1.0, "snooze": 0.3, "dismiss": 0.0})

    def test_map_with_an_unknown_reaction_is_rejected(self) -> None:
        values = {"done": 1.0, "snooze": 0.3, "dismiss": 0.0, "not_for_me": -0.5, "shrug": 0.1}

        with pytest.raises(ValueError, match="reward map must cover exactly"):
            RewardMap(values=values)

    @pytest.mark.parametrize("wait", [timedelta(0), timedelta(minutes=-5)])
    def test_non_positive_wait_is_rejected(self, wait: timedelta) -> None:
        with pytest.raises(ValueError, match="reward wait must be positive"):
            RewardMap(wait=wait)

    def test_custom_map_is_used(self) -> None:
        rewards = RewardMap(
            version="custom", values={"done": 2.0, "snooze": 0.5, "dismiss": -0.1, "not_for_me": -1.0}, default=-0.2
        )

        assert rewards.reward("done") == 2.0
        assert rewards.reward("not_for_me") == -1.0
        assert rewards.default == -0.2

    def test_unknown_reaction_raises_key_error(self) -> None:
        with pytest.raises(KeyError, match="shrug"):
            RewardMap().reward("shrug")
