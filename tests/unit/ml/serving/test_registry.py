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
    build_policy,
    copy_policy,
)
from tipwise.ml.serving.policies import Decision
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


# Hashed, normalized and crossed like the recommender's spec: the readout is factored.
WIDE = FeatureSpec(
    name="test/wide",
    shared=("bias", "s0", "s1", "s2"),
    action=("x0", "x1", "x2", "x3", "c0", "c1", "c2"),
    action_cross=("c0", "c1", "c2"),
    normalize=True,
    shared_bits=3,
    action_bits=4,
)
WIDE_SPECS: dict[str, PolicySpec] = {
    "linucb": LinUCBSpec(),
    "greedy": EpsilonGreedySpec(),
    "random": UniformSpec(),
}


def random_context(rng: np.random.Generator) -> Features:
    return {"bias": 1.0, **{f"s{i}": float(rng.uniform(0, 1)) for i in range(3) if rng.random() < 0.7}}


def random_candidates(rng: np.random.Generator) -> list[Features]:
    return [
        {f"c{rng.integers(3)}": 1.0, **{f"x{i}": float(rng.uniform(0, 1)) for i in range(4) if rng.random() < 0.5}}
        for _ in range(int(rng.integers(2, 9)))
    ]


def random_batch(rng: np.random.Generator, size: int) -> list[LoggedReward]:
    return [
        LoggedReward(
            shared=random_context(rng),
            action=random_candidates(rng)[0],
            propensity=0.5,
            reward=float(rng.integers(2)),
        )
        for _ in range(size)
    ]


def published_registry(batches: dict[str, list[LoggedReward]]) -> PolicyRegistry:
    """A registry serving copies (as the learner publishes them) of models trained on each policy's batch."""
    served = PolicyRegistry(specs=WIDE_SPECS, live="linucb", features=WIDE)
    for name, spec in WIDE_SPECS.items():
        trained = build_policy(spec, features=WIDE)
        for start in range(0, len(batches[name]), 7):  # in batches, and one at a time: the learner's ways
            trained.learn(batches[name][start : start + 7])
        trained.learn(batches[name][:1])
        served.publish(name, copy_policy(trained, spec, WIDE))
    return served


def unshared_decide(served: PolicyRegistry, context: Features, candidates: list[Features], seed: int) -> list[Decision]:
    """Every policy's pick from an independent copy of its model (nothing shared), with the registry's generators."""
    names = (served.live, *served.shadow_names)
    return [
        copy_policy(served.model(name), WIDE_SPECS[name], WIDE).pick(
            context=context, candidates=candidates, rng=policy_rng(seed, position)
        )
        for position, name in enumerate(names)
    ]


class TestSharedReadout:
    @pytest.mark.parametrize("model_seed", range(6))
    def test_equal_states_share_one_readout_and_answer_bit_for_bit_as_unshared_copies(self, model_seed: int) -> None:
        rng = np.random.default_rng(model_seed)
        same = random_batch(rng, int(rng.integers(1, 60)))
        served = published_registry({"linucb": same, "greedy": same, "random": same})

        assert served.model("greedy").readout() is served.model("linucb").readout()  # type: ignore[attr-defined]
        for seed in range(25):
            context, candidates = random_context(rng), random_candidates(rng)
            ranked = served.decide(context=context, candidates=candidates, seed=seed)
            expected = unshared_decide(served, context, candidates, seed)

            assert [choice.decision for choice in (ranked.live, *ranked.shadows)] == expected
            for choice, decision in zip((ranked.live, *ranked.shadows), expected, strict=True):
                assert np.array(choice.decision.probabilities).tobytes() == np.array(decision.probabilities).tobytes()
                assert np.float64(choice.decision.confidence).tobytes() == np.float64(decision.confidence).tobytes()

    @pytest.mark.parametrize("model_seed", range(4))
    def test_different_states_keep_their_own_readouts(self, model_seed: int) -> None:
        rng = np.random.default_rng(100 + model_seed)
        shared = random_batch(rng, 30)
        served = published_registry({"linucb": shared, "greedy": shared + random_batch(rng, 1), "random": shared})

        assert served.model("greedy").readout() is not served.model("linucb").readout()  # type: ignore[attr-defined]
        for seed in range(25):
            context, candidates = random_context(rng), random_candidates(rng)
            ranked = served.decide(context=context, candidates=candidates, seed=seed)

            assert [choice.decision for choice in (ranked.live, *ranked.shadows)] == unshared_decide(
                served, context, candidates, seed
            )

    def test_fresh_registry_models_share_and_a_new_live_model_stops_sharing(self) -> None:
        served = PolicyRegistry(specs=WIDE_SPECS, live="linucb", features=WIDE)
        assert served.model("greedy").readout() is served.model("linucb").readout()  # type: ignore[attr-defined]

        trained = build_policy(WIDE_SPECS["linucb"], features=WIDE)
        trained.learn(random_batch(np.random.default_rng(7), 10))
        served.publish("linucb", copy_policy(trained, WIDE_SPECS["linucb"], WIDE))

        assert served.model("greedy").readout() is not served.model("linucb").readout()  # type: ignore[attr-defined]
