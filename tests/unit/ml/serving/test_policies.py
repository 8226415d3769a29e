"""Unit tests of the contextual-bandit policies: probabilities, replay, learning, state, specs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tipwise.ml.serving import (
    Decision,
    EpsilonGreedyPolicy,
    EpsilonGreedySpec,
    Features,
    FeatureSpec,
    LinUCBPolicy,
    LinUCBSpec,
    LoggedReward,
    Policy,
    PolicySpec,
    UniformPolicy,
    UniformSpec,
    build_policy,
    spec_from_dict,
)

SPEC = FeatureSpec(
    name="test/v1", shared=("bias", "morning"), action=("a0", "a1", "a2"), action_cross=("a0", "a1", "a2")
)
CONTEXT: Features = {"bias": 1.0, "morning": 1.0}
CANDIDATES: list[Features] = [{"a0": 1.0}, {"a1": 1.0}, {"a2": 1.0}]
BEST = 1
SEEDS = range(40)

PolicyFactory = Callable[[], Policy]

ALL_POLICIES: dict[str, PolicyFactory] = {
    "uniform": lambda: UniformPolicy(),
    "epsilon_greedy": lambda: EpsilonGreedyPolicy(EpsilonGreedySpec(epsilon=0.2), features=SPEC),
    "linucb": lambda: LinUCBPolicy(LinUCBSpec(alpha=0.5, floor=0.1), features=SPEC),
}
LINEAR_POLICIES = {name: factory for name, factory in ALL_POLICIES.items() if name != "uniform"}
FLOORS = {"epsilon_greedy": 0.2, "linucb": 0.1}


def rewarding_batch(best: int = BEST, rounds: int = 20) -> list[LoggedReward]:
    """Examples where the `best` candidate always pays 1 and the others 0."""
    return [
        LoggedReward(shared=CONTEXT, action=candidate, propensity=1 / 3, reward=1.0 if index == best else 0.0)
        for _ in range(rounds)
        for index, candidate in enumerate(CANDIDATES)
    ]


def pick(policy: Policy, seed: int, *, explore: bool = True, candidates: list[Features] | None = None) -> Decision:
    return policy.pick(
        context=CONTEXT,
        candidates=CANDIDATES if candidates is None else candidates,
        rng=np.random.default_rng(seed),
        explore=explore,
    )


def rebuilt(policy: Policy) -> Policy:
    return build_policy(spec_from_dict(policy.spec_dict()), features=SPEC)


@pytest.fixture(params=sorted(ALL_POLICIES))
def any_policy(request: pytest.FixtureRequest) -> Policy:
    name: str = request.param
    return ALL_POLICIES[name]()


@pytest.fixture(params=sorted(LINEAR_POLICIES))
def linear_policy(request: pytest.FixtureRequest) -> Policy:
    name: str = request.param
    return LINEAR_POLICIES[name]()


class TestEveryPolicy:
    @pytest.mark.parametrize("trained", [False, True])
    def test_probabilities_cover_every_candidate_and_sum_to_one(self, any_policy: Policy, trained: bool) -> None:
        if trained:
            any_policy.learn(rewarding_batch())

        for seed in SEEDS:
            decision = pick(any_policy, seed)

            assert len(decision.probabilities) == len(CANDIDATES)
            assert np.isclose(sum(decision.probabilities), 1.0)
            assert all(p >= 0.0 for p in decision.probabilities)
            assert 0 <= decision.index < len(CANDIDATES)
            assert decision.propensity == decision.probabilities[decision.index]

    def test_same_seed_replays_the_same_decision(self, any_policy: Policy) -> None:
        for seed in SEEDS:
            assert pick(any_policy, seed) == pick(any_policy, seed)

    def test_different_seeds_eventually_pick_differently(self, any_policy: Policy) -> None:
        assert len({pick(any_policy, seed).index for seed in SEEDS}) > 1

    def test_learning_counts_examples_as_the_model_version(self, any_policy: Policy) -> None:
        assert any_policy.version == 0

        any_policy.learn(rewarding_batch(rounds=2))

        assert any_policy.version == 6

    def test_state_round_trip_gives_identical_decisions(self, any_policy: Policy) -> None:
        any_policy.learn(rewarding_batch(rounds=3))
        copy = rebuilt(any_policy)

        copy.load_state(any_policy.state_bytes())

        assert copy.version == any_policy.version
        for seed in SEEDS:
            assert pick(copy, seed) == pick(any_policy, seed)
            assert pick(copy, seed, explore=False) == pick(any_policy, seed, explore=False)

    def test_spec_dict_round_trip_builds_the_same_kind_of_policy(self, any_policy: Policy) -> None:
        copy = rebuilt(any_policy)

        assert type(copy) is type(any_policy)
        assert copy.kind == any_policy.kind == any_policy.spec_dict()["kind"]
        assert copy.spec_dict() == any_policy.spec_dict()
        assert copy.version == 0

    def test_pick_without_candidates_is_rejected(self, any_policy: Policy) -> None:
        with pytest.raises(ValueError, match="at least one candidate"):
            pick(any_policy, 0, candidates=[])

    def test_single_candidate_is_always_picked_with_certainty(self, any_policy: Policy) -> None:
        decision = pick(any_policy, 7, candidates=[{"a2": 1.0}])

        assert decision.index == 0
        assert decision.probabilities == (1.0,)
        assert decision.propensity == 1.0


class TestUniformPolicy:
    def test_every_candidate_is_equally_likely_whether_exploring_or_not(self) -> None:
        policy = UniformPolicy()
        policy.learn(rewarding_batch())

        for explore in (True, False):
            decision = pick(policy, 3, explore=explore)

            assert decision.probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))

    def test_confidence_is_zero_and_every_pick_explores(self) -> None:
        decision = pick(UniformPolicy(), 3)

        assert decision.confidence == 0.0
        assert decision.explored is True

    def test_spec_dict_is_the_kind_only(self) -> None:
        assert UniformPolicy().spec_dict() == {"kind": "uniform"}


class TestLinearPolicies:
    def test_learning_makes_the_greedy_pick_the_rewarded_action(self, linear_policy: Policy) -> None:
        linear_policy.learn(rewarding_batch())

        for seed in SEEDS:
            decision = pick(linear_policy, seed, explore=False)

            assert decision.index == BEST
            assert decision.probabilities == (0.0, 1.0, 0.0)
            assert decision.explored is False

    def test_learning_follows_whichever_action_pays(self, linear_policy: Policy) -> None:
        linear_policy.learn(rewarding_batch(best=2))

        assert pick(linear_policy, 0, explore=False).index == 2

    def test_without_exploration_ties_share_the_probability_evenly(self, linear_policy: Policy) -> None:
        decision = pick(linear_policy, 0, explore=False)

        assert decision.probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))
        assert decision.explored is False

    def test_exploring_keeps_every_probability_at_or_above_the_floor_share(self, linear_policy: Policy) -> None:
        floor = FLOORS[linear_policy.kind]
        k = len(CANDIDATES)
        linear_policy.learn(rewarding_batch())

        decision = pick(linear_policy, 11, explore=True)

        assert decision.explored is True
        assert min(decision.probabilities) >= floor / k - 1e-12
        assert decision.probabilities == pytest.approx((floor / k, 1 - floor + floor / k, floor / k))

    def test_exploring_policy_sometimes_picks_a_non_greedy_action(self, linear_policy: Policy) -> None:
        linear_policy.learn(rewarding_batch())

        picks = [pick(linear_policy, seed).index for seed in range(200)]

        assert picks.count(BEST) > len(picks) // 2
        assert set(picks) - {BEST}

    def test_confidence_is_in_unit_interval_and_grows_after_learning_on_that_action(
        self, linear_policy: Policy
    ) -> None:
        only = [CANDIDATES[BEST]]
        before = pick(linear_policy, 0, candidates=only).confidence

        linear_policy.learn(rewarding_batch(rounds=5))
        after = pick(linear_policy, 0, candidates=only).confidence

        assert 0.0 < before <= 1.0
        assert 0.0 < after <= 1.0
        assert after > before

    def test_state_of_another_dimension_is_rejected(self, linear_policy: Policy) -> None:
        other = FeatureSpec(name="other/v1", shared=("bias",), action=("a0",))
        foreign = build_policy(spec_from_dict(linear_policy.spec_dict()), features=other)

        with pytest.raises(ValueError, match="dimension"):
            linear_policy.load_state(foreign.state_bytes())

    def test_loaded_state_is_independent_of_the_original(self, linear_policy: Policy) -> None:
        copy = rebuilt(linear_policy)
        copy.load_state(linear_policy.state_bytes())

        copy.learn(rewarding_batch())

        assert linear_policy.version == 0
        assert pick(linear_policy, 0, explore=False).probabilities == pytest.approx((1 / 3, 1 / 3, 1 / 3))


class TestPolicySpecs:
    @pytest.mark.parametrize(
        "make",
        [
            pytest.param(lambda: LinUCBSpec(alpha=-1), id="linucb-alpha"),
            pytest.param(lambda: LinUCBSpec(ridge=0), id="linucb-ridge"),
            pytest.param(lambda: LinUCBSpec(floor=1.0), id="linucb-floor-one"),
            pytest.param(lambda: LinUCBSpec(floor=-0.1), id="linucb-floor-negative"),
            pytest.param(lambda: EpsilonGreedySpec(epsilon=1.5), id="epsilon-too-big"),
            pytest.param(lambda: EpsilonGreedySpec(epsilon=-0.1), id="epsilon-negative"),
            pytest.param(lambda: EpsilonGreedySpec(ridge=-1.0), id="epsilon-ridge"),
        ],
    )
    def test_out_of_range_parameters_are_rejected(self, make: Callable[[], PolicySpec]) -> None:
        with pytest.raises(ValueError, match="must be"):
            make()

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ({"kind": "uniform"}, UniformSpec()),
            ({"kind": "epsilon_greedy", "epsilon": 0.3}, EpsilonGreedySpec(epsilon=0.3)),
            ({"kind": "linucb", "alpha": 0.5, "floor": 0.2}, LinUCBSpec(alpha=0.5, floor=0.2)),
        ],
    )
    def test_spec_is_parsed_from_its_dict_form(self, data: dict[str, Any], expected: PolicySpec) -> None:
        assert spec_from_dict(data) == expected

    def test_defaults_survive_the_dict_round_trip(self) -> None:
        for spec in (UniformSpec(), EpsilonGreedySpec(), LinUCBSpec()):
            assert spec_from_dict(build_policy(spec, features=SPEC).spec_dict()) == spec

    def test_unknown_kind_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="unknown policy kind 'nope'"):
            spec_from_dict({"kind": "nope"})

    def test_missing_kind_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="unknown policy kind None"):
            spec_from_dict({"alpha": 1.0})

    def test_unknown_parameter_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="bad linucb policy spec"):
            spec_from_dict({"kind": "linucb", "gamma": 2.0})

    def test_invalid_value_in_dict_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="alpha must be >= 0"):
            spec_from_dict({"kind": "linucb", "alpha": -1})

    def test_build_policy_returns_the_policy_of_the_spec_kind(self) -> None:
        assert isinstance(build_policy(UniformSpec(), features=SPEC), UniformPolicy)
        assert isinstance(build_policy(EpsilonGreedySpec(), features=SPEC), EpsilonGreedyPolicy)
        assert isinstance(build_policy(LinUCBSpec(), features=SPEC), LinUCBPolicy)
