"""Unit tests of the policy registry: one live policy, shadows, published models."""

from __future__ import annotations

import pytest

from tipwise.ml.serving import (
    EpsilonGreedySpec,
    Features,
    FeatureSpec,
    LinUCBSpec,
    LoggedReward,
    PolicyRegistry,
    PolicySpec,
    UniformSpec,
    copy_policy,
)

SPEC = FeatureSpec(name="test/v1", shared=("bias",), action=("a0", "a1", "a2"), action_cross=("a0", "a1", "a2"))
CONTEXT: Features = {"bias": 1.0}
CANDIDATES: list[Features] = [{"a0": 1.0}, {"a1": 1.0}, {"a2": 1.0}]
SPECS: dict[str, PolicySpec] = {
    "linucb": LinUCBSpec(),
    "greedy": EpsilonGreedySpec(),
    "random": UniformSpec(),
}


def registry(live: str = "linucb") -> PolicyRegistry:
    return PolicyRegistry(specs=SPECS, live=live, features=SPEC)


def batch_rewarding(best: int, rounds: int = 10) -> list[LoggedReward]:
    return [
        LoggedReward(shared=CONTEXT, action=candidate, propensity=1 / 3, reward=1.0 if index == best else 0.0)
        for _ in range(rounds)
        for index, candidate in enumerate(CANDIDATES)
    ]


class TestPolicyRegistry:
    def test_shadows_are_every_configured_policy_except_the_live_one(self) -> None:
        assert registry("linucb").shadow_names == ("greedy", "random")
        assert registry("random").shadow_names == ("linucb", "greedy")

    def test_unknown_live_policy_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="live policy 'nope' is not among the configured policies"):
            registry("nope")

    def test_decide_answers_with_the_live_policy_and_every_shadow(self) -> None:
        ranked = registry().decide(context=CONTEXT, candidates=CANDIDATES, seed=5)

        assert ranked.live.policy == "linucb"
        assert [choice.policy for choice in ranked.shadows] == ["greedy", "random"]
        assert all(choice.model_version == 0 for choice in (ranked.live, *ranked.shadows))
        for choice in (ranked.live, *ranked.shadows):
            assert len(choice.decision.probabilities) == len(CANDIDATES)

    def test_same_seed_replays_live_and_shadow_decisions_identically(self) -> None:
        served = registry()
        for seed in range(30):
            first = served.decide(context=CONTEXT, candidates=CANDIDATES, seed=seed)
            again = served.decide(context=CONTEXT, candidates=CANDIDATES, seed=seed)
            fresh = registry().decide(context=CONTEXT, candidates=CANDIDATES, seed=seed)

            assert first == again == fresh

    def test_different_seeds_eventually_change_the_live_pick(self) -> None:
        served = registry()

        picks = {
            served.decide(context=CONTEXT, candidates=CANDIDATES, seed=seed).live.decision.index for seed in range(30)
        }

        assert len(picks) > 1

    def test_shadows_always_explore_even_when_the_live_policy_does_not(self) -> None:
        ranked = registry().decide(context=CONTEXT, candidates=CANDIDATES, seed=1, explore=False)

        assert ranked.live.decision.explored is False
        assert all(choice.decision.explored for choice in ranked.shadows)

    def test_publish_swaps_the_model_and_versions_reflect_it(self) -> None:
        served = registry()
        original = served.model("linucb")
        trained = copy_policy(original, SPECS["linucb"], SPEC)
        trained.learn(batch_rewarding(best=2))

        served.publish("linucb", trained)

        assert served.model("linucb") is trained
        assert served.versions() == {"linucb": 30, "greedy": 0, "random": 0}
        assert original.version == 0
        ranked = served.decide(context=CONTEXT, candidates=CANDIDATES, seed=3, explore=False)
        assert ranked.live.model_version == 30
        assert ranked.live.decision.index == 2
        assert ranked.live.decision.probabilities == (0.0, 0.0, 1.0)

    def test_copy_policy_is_independent_of_the_served_model(self) -> None:
        served = registry()
        copy = copy_policy(served.model("greedy"), SPECS["greedy"], SPEC)

        copy.learn(batch_rewarding(best=0))

        assert served.versions()["greedy"] == 0
        assert copy.version == 30
