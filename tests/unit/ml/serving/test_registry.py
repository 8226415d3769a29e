"""Unit tests of the policy registry: one live policy, shadows, published models."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
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
from tipwise.ml.serving.registry import policy_rng

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


class TestPolicyRng:
    def test_the_same_seed_and_position_give_the_same_stream(self) -> None:
        first = policy_rng(2**62 + 7, 1).random(16)
        policy_rng(3, 1).random(5)  # another decision in between
        assert np.array_equal(policy_rng(2**62 + 7, 1).random(16), first)

    def test_positions_and_seeds_give_different_streams(self) -> None:
        streams = [policy_rng(seed, position).random(8) for seed in (0, 1, 2**63 - 1) for position in (0, 1, 2)]
        assert len({stream.tobytes() for stream in streams}) == len(streams)

    def test_a_thread_gets_its_own_generators(self) -> None:
        expected = policy_rng(11, 0).random(8)
        here = policy_rng(11, 0)
        with ThreadPoolExecutor(max_workers=1) as pool:
            there = pool.submit(lambda: policy_rng(99, 0)).result()
        assert there is not here
        assert np.array_equal(here.random(8), expected)

    def test_the_draws_look_uniform(self) -> None:
        # One draw per decision seed, as a pick makes: no pattern across consecutive seeds.
        draws = np.array([policy_rng(seed, 0).random() for seed in range(4000)])
        assert abs(draws.mean() - 0.5) < 0.02
        assert np.histogram(draws, bins=10, range=(0, 1))[0].min() > 330
