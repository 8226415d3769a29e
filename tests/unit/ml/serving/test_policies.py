"""Unit tests of the contextual-bandit policies: probabilities, replay, learning, state, specs, ridge models."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tipwise.ml.serving import (
    CandidateSet,
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
    RidgeModel,
    UniformPolicy,
    UniformSpec,
    build_policy,
    collision_free_seed,
    spec_from_dict,
)
from tipwise.ml.serving.policies import (
    GRID_BITS,
    SPEC_TYPES,
    CandidateRows,
    DecisionRows,
    FactoredRidge,
    FeatureLayout,
    LinearTSPolicy,
    LinearTSSpec,
    RidgeIGWPolicy,
    RidgeIGWSpec,
    RidgeReadout,
    VWCbAdfSpec,
    inverse_gap_weights,
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
    "linear_ts": lambda: LinearTSPolicy(LinearTSSpec(scale=0.3, floor=0.1, draws=200), features=SPEC),
    "ridge_igw": lambda: RidgeIGWPolicy(RidgeIGWSpec(gamma=50.0, alpha=0.1, floor=0.1), features=SPEC),
}
LINEAR_POLICIES = {name: factory for name, factory in ALL_POLICIES.items() if name != "uniform"}
# Policies that put all but the floor on their favourite; the others spread it by their own rule.
ARGMAX_POLICIES = {name: LINEAR_POLICIES[name] for name in ("epsilon_greedy", "linucb")}
FLOORS = {"epsilon_greedy": 0.2, "linucb": 0.1, "linear_ts": 0.1, "ridge_igw": 0.1}


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


@pytest.fixture(params=sorted(ARGMAX_POLICIES))
def argmax_policy(request: pytest.FixtureRequest) -> Policy:
    name: str = request.param
    return ARGMAX_POLICIES[name]()


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

    def test_probabilities_are_plain_floats_of_exactly_one_over_k(self) -> None:
        decision = pick(UniformPolicy(), 3, candidates=[{"a0": 1.0}] * 7)

        assert decision.probabilities == (1 / 7,) * 7
        assert all(type(p) is float for p in decision.probabilities)

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

        for seed in SEEDS:
            decision = pick(linear_policy, seed, explore=True)

            assert decision.explored is True
            assert min(decision.probabilities) >= floor / k - 1e-12
            assert max(range(k), key=lambda i: decision.probabilities[i]) == BEST

    def test_argmax_policies_put_all_but_the_floor_on_the_favourite(self, argmax_policy: Policy) -> None:
        floor = FLOORS[argmax_policy.kind]
        k = len(CANDIDATES)
        argmax_policy.learn(rewarding_batch())

        decision = pick(argmax_policy, 11, explore=True)

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
            pytest.param(lambda: LinearTSSpec(scale=-0.1), id="ts-scale"),
            pytest.param(lambda: LinearTSSpec(draws=0), id="ts-draws"),
            pytest.param(lambda: LinearTSSpec(floor=1.0), id="ts-floor"),
            pytest.param(lambda: LinearTSSpec(ridge=0.0), id="ts-ridge"),
            pytest.param(lambda: RidgeIGWSpec(gamma=-1.0), id="igw-gamma"),
            pytest.param(lambda: RidgeIGWSpec(alpha=-1.0), id="igw-alpha"),
            pytest.param(lambda: RidgeIGWSpec(floor=-0.5), id="igw-floor"),
            pytest.param(lambda: VWCbAdfSpec(epsilon=2.0), id="vw-epsilon"),
            pytest.param(lambda: VWCbAdfSpec(learning_rate=0.0), id="vw-learning-rate"),
            pytest.param(lambda: VWCbAdfSpec(exploration="bag"), id="vw-exploration"),  # type: ignore[arg-type]
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
            ({"kind": "linear_ts", "scale": 0.1, "draws": 64}, LinearTSSpec(scale=0.1, draws=64)),
            ({"kind": "ridge_igw", "gamma": 10.0}, RidgeIGWSpec(gamma=10.0)),
            ({"kind": "vw_cb_adf", "exploration": "epsilon"}, VWCbAdfSpec(exploration="epsilon")),
        ],
    )
    def test_spec_is_parsed_from_its_dict_form(self, data: dict[str, Any], expected: PolicySpec) -> None:
        assert spec_from_dict(data) == expected

    def test_defaults_survive_the_dict_round_trip(self) -> None:
        for spec_type in SPEC_TYPES.values():
            spec = spec_type()
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
        assert isinstance(build_policy(LinearTSSpec(), features=SPEC), LinearTSPolicy)
        assert isinstance(build_policy(RidgeIGWSpec(), features=SPEC), RidgeIGWPolicy)
        assert build_policy(VWCbAdfSpec(), features=SPEC).kind == "vw_cb_adf"


class TestLinearTS:
    def test_probabilities_are_monte_carlo_shares_of_the_draws_mixed_with_the_floor(self) -> None:
        spec = LinearTSSpec(scale=0.5, floor=0.1, draws=50)
        policy = LinearTSPolicy(spec, features=SPEC)
        policy.learn(rewarding_batch(rounds=2))
        k = len(CANDIDATES)

        for seed in SEEDS:
            probabilities = np.array(pick(policy, seed).probabilities)
            wins = (probabilities - spec.floor / k) / (1 - spec.floor) * spec.draws

            np.testing.assert_allclose(wins, np.round(wins), atol=1e-9)
            assert np.round(wins).sum() == spec.draws

    def test_the_pick_is_drawn_from_the_returned_probabilities(self) -> None:
        policy = LinearTSPolicy(LinearTSSpec(scale=1.0, floor=0.0, draws=20), features=SPEC)
        policy.learn(rewarding_batch(rounds=1))
        decisions = [pick(policy, seed) for seed in range(3000)]

        expected = np.mean([d.probabilities for d in decisions], axis=0)
        observed = np.bincount([d.index for d in decisions], minlength=len(CANDIDATES)) / len(decisions)

        np.testing.assert_allclose(observed, expected, atol=0.03)
        assert expected.min() > 0.05

    def test_monte_carlo_shares_match_thompson_probabilities_of_the_posterior(self) -> None:
        spec = LinearTSSpec(scale=1.0, floor=0.0, draws=4000)
        policy = LinearTSPolicy(spec, features=SPEC)
        policy.learn(rewarding_batch(rounds=1))
        rows = policy.layout.rows(CONTEXT, CANDIDATES)
        x = rows.dense()
        dense = RidgeModel(x.shape[1], spec.ridge)
        for example in rewarding_batch(rounds=1):
            dense.update(policy.layout.rows(example.shared, [example.action]).dense()[0], example.reward)
        theta = np.random.default_rng(99).multivariate_normal(dense.theta, dense.a_inv, size=20000)
        exact = np.bincount((theta @ x.T).argmax(axis=1), minlength=len(CANDIDATES)) / len(theta)

        estimated = np.array(pick(policy, 5).probabilities)

        np.testing.assert_allclose(estimated, exact, atol=0.03)

    def test_zero_scale_is_greedy_on_the_posterior_mean_plus_the_floor(self) -> None:
        policy = LinearTSPolicy(LinearTSSpec(scale=0.0, floor=0.3), features=SPEC)
        policy.learn(rewarding_batch())

        assert pick(policy, 4).probabilities == pytest.approx((0.1, 0.8, 0.1))

    def test_identical_candidates_share_the_wins_evenly(self) -> None:
        policy = LinearTSPolicy(LinearTSSpec(floor=0.0), features=SPEC)

        decision = pick(policy, 0, candidates=[{"a1": 1.0}, {"a1": 1.0}])

        assert decision.probabilities == pytest.approx((0.5, 0.5))


class TestRidgeIGW:
    def test_inverse_gap_weights_give_trailing_candidates_one_over_k_plus_gamma_gap(self) -> None:
        weights = inverse_gap_weights(np.array([1.0, 0.5, 0.0]), gamma=10.0)

        np.testing.assert_allclose(weights, [1 - 1 / 8 - 1 / 13, 1 / 8, 1 / 13])

    def test_tied_best_candidates_share_the_remaining_mass(self) -> None:
        weights = inverse_gap_weights(np.array([0.0, 1.0, 1.0, 0.5]), gamma=2.0)

        np.testing.assert_allclose(weights, [1 / 6, (1 - 1 / 6 - 1 / 5) / 2, (1 - 1 / 6 - 1 / 5) / 2, 1 / 5])

    def test_zero_gamma_is_uniform(self) -> None:
        np.testing.assert_allclose(inverse_gap_weights(np.array([3.0, 1.0, -2.0, 0.0]), gamma=0.0), [0.25] * 4)

    def test_larger_gamma_exploits_harder(self) -> None:
        probabilities = []
        for gamma in (1.0, 10.0, 1000.0):
            policy = RidgeIGWPolicy(RidgeIGWSpec(gamma=gamma, alpha=0.0, floor=0.0), features=SPEC)
            policy.learn(rewarding_batch())
            probabilities.append(pick(policy, 0).probabilities[BEST])

        assert probabilities == sorted(probabilities)
        assert probabilities[-1] > 0.99


def random_rows_spec(normalize: bool) -> FeatureSpec:
    return FeatureSpec(
        name="random/v1",
        shared=("s0", "s1", "s2"),
        action=("c0", "c1", "c2", "effort"),
        action_cross=("c0", "c1", "c2"),
        normalize=normalize,
    )


def random_candidates(rng: np.random.Generator, k: int, *, crossed: int = 1) -> list[Features]:
    """Candidates with an `effort` value and `crossed` of the three crossed features switched on."""
    out: list[Features] = []
    for _ in range(k):
        candidate = {"effort": float(rng.normal())}
        for name in rng.choice(["c0", "c1", "c2"], size=crossed, replace=False):
            candidate[str(name)] = float(rng.normal())
        out.append(candidate)
    return out


def random_context(rng: np.random.Generator) -> Features:
    return {f"s{i}": float(rng.normal()) for i in range(3)}


class TestFeatureLayout:
    @pytest.mark.parametrize("normalize", [False, True])
    def test_dense_rows_equal_the_feature_spec_matrix(self, normalize: bool) -> None:
        spec = random_rows_spec(normalize)
        layout = FeatureLayout(spec)
        rng = np.random.default_rng(3)
        for crossed in (0, 1, 2):
            context, candidates = random_context(rng), random_candidates(rng, 4, crossed=crossed)

            np.testing.assert_allclose(layout.rows(context, candidates).dense(), spec.matrix(context, candidates))

    def test_without_shared_weights_the_shared_block_is_left_out_but_still_scales(self) -> None:
        spec = random_rows_spec(True)
        rng = np.random.default_rng(4)
        context, candidates = random_context(rng), random_candidates(rng, 3)

        rows = FeatureLayout(spec, shared_weights=False).rows(context, candidates)

        np.testing.assert_allclose(rows.dense(), spec.matrix(context, candidates)[:, 3:])

    def test_select_keeps_one_candidate(self) -> None:
        spec = random_rows_spec(False)
        rng = np.random.default_rng(5)
        context, candidates = random_context(rng), random_candidates(rng, 3)
        rows = FeatureLayout(spec).rows(context, candidates)

        np.testing.assert_array_equal(rows.select(2).dense(), spec.matrix(context, candidates[2:]))

    def test_unknown_features_raise_key_errors_like_the_feature_spec(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))

        with pytest.raises(KeyError, match="unknown shared feature 'x'"):
            layout.rows({"x": 1.0}, [{}])
        with pytest.raises(KeyError, match="unknown action feature 'w'"):
            layout.rows({}, [{"c0": 1.0}, {"w": 1.0}])


def on_grid(values: Any) -> Any:
    """Round to the grid `FactoredRidge` learns on."""
    return np.rint(np.asarray(values) * 2.0**GRID_BITS) / 2.0**GRID_BITS


def learn_both(factored: FactoredRidge, dense: RidgeModel, rows: CandidateRows, index: int, reward: float) -> None:
    """Teach both models the same example; the dense one sees it rounded to the grid, as the factored one does."""
    factored.update(rows.select(index), reward)
    dense.update(on_grid(rows.dense()[index]), float(on_grid(reward)))


def assert_same_answers(factored: FactoredRidge, dense: RidgeModel, rows: CandidateRows) -> None:
    x = rows.dense()
    np.testing.assert_allclose(factored.mean(rows), dense.mean(x), atol=1e-10)
    np.testing.assert_allclose(factored.covariance(rows), dense.covariance(x), atol=1e-10)
    np.testing.assert_allclose(factored.width(rows), dense.width(x), atol=1e-10)


class TestFactoredRidge:
    @pytest.mark.parametrize("shared_weights", [False, True])
    @pytest.mark.parametrize("normalize", [False, True])
    def test_answers_equal_a_dense_ridge_on_the_same_vectors(self, normalize: bool, shared_weights: bool) -> None:
        layout = FeatureLayout(random_rows_spec(normalize), shared_weights=shared_weights)
        factored = FactoredRidge(layout, 0.7)
        dense = RidgeModel(factored.dim, 0.7)
        rng = np.random.default_rng(6)
        for _ in range(40):
            rows = layout.rows(random_context(rng), random_candidates(rng, 4, crossed=int(rng.integers(0, 2))))
            assert_same_answers(factored, dense, rows)
            learn_both(factored, dense, rows, int(rng.integers(0, 4)), float(rng.normal()))

        assert factored.n == dense.n == 40
        assert not factored.is_dense

    def test_a_row_with_two_crossed_features_turns_it_dense_with_the_same_answers(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        factored = FactoredRidge(layout, 1.0)
        dense = RidgeModel(factored.dim, 1.0)
        rng = np.random.default_rng(7)
        for step in range(30):
            rows = layout.rows(random_context(rng), random_candidates(rng, 3, crossed=2 if step == 10 else 1))
            learn_both(factored, dense, rows, 0, float(rng.normal()))
            assert factored.is_dense == (step >= 10)
            assert_same_answers(factored, dense, rows)

    @pytest.mark.parametrize("crossed", [1, 2])
    def test_a_model_rebuilt_from_its_bytes_answers_bit_for_bit_alike(self, crossed: int) -> None:
        layout = FeatureLayout(random_rows_spec(True))
        model = FactoredRidge(layout, 1.0)
        rng = np.random.default_rng(8)
        model.learn(layout.learn_rows(random_examples(rng, 20, crossed=crossed)))
        copy = FactoredRidge(layout, 1.0)

        copy.load(model.to_bytes())

        rows = layout.rows(random_context(rng), random_candidates(rng, 5))
        assert copy.n == model.n == 20
        assert copy.is_dense == model.is_dense == (crossed == 2)
        assert copy.derived_exactly
        assert model.derived_exactly
        np.testing.assert_array_equal(copy.mean(rows), model.mean(rows))
        np.testing.assert_array_equal(copy.covariance(rows), model.covariance(rows))

    def test_one_example_updates_answer_like_the_statistics_up_to_rounding_until_the_next_batch(self) -> None:
        layout = FeatureLayout(random_rows_spec(True))
        rng = np.random.default_rng(15)
        examples = random_examples(rng, 30, crossed=1)
        stepwise, exact = FactoredRidge(layout, 1.0), FactoredRidge(layout, 1.0)
        for example in examples[:20]:
            stepwise.learn(layout.learn_rows([example]))
        exact.learn(layout.learn_rows(examples[:20]))
        rows = layout.rows(random_context(rng), random_candidates(rng, 5))

        assert not derived_exactly(stepwise)
        np.testing.assert_allclose(stepwise.mean(rows), exact.mean(rows), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(stepwise.width(rows), exact.width(rows), rtol=1e-9, atol=1e-12)

        stepwise.learn(layout.learn_rows(examples[20:]))
        exact.learn(layout.learn_rows(examples[20:]))

        assert derived_exactly(stepwise)
        np.testing.assert_array_equal(stepwise.mean(rows), exact.mean(rows))
        np.testing.assert_array_equal(stepwise.covariance(rows), exact.covariance(rows))

    def test_a_dense_inverse_state_from_before_the_statistics_is_converted(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        dense = RidgeModel(FactoredRidge(layout, 1.0).dim, 1.0)
        rng = np.random.default_rng(9)
        rows = layout.rows(random_context(rng), random_candidates(rng, 3))
        dense.update(rows.dense()[1], 1.0)
        model = FactoredRidge(layout, 1.0)

        model.load(dense.to_bytes())

        assert model.is_dense
        assert model.migrated
        assert model.n == 1
        np.testing.assert_allclose(model.mean(rows), dense.mean(rows.dense()), atol=1e-9)
        np.testing.assert_allclose(model.width(rows), dense.width(rows.dense()), atol=1e-9)

    @pytest.mark.parametrize(
        "spec",
        [
            FeatureSpec(name="plain/v1", shared=("s0", "s1"), action=("effort",)),
            FeatureSpec(name="no-shared/v1", shared=(), action=("c0", "effort"), action_cross=("c0",)),
        ],
        ids=["no-crossed-block", "no-shared-features"],
    )
    def test_degenerate_layouts_still_equal_a_dense_ridge(self, spec: FeatureSpec) -> None:
        layout = FeatureLayout(spec)
        factored = FactoredRidge(layout, 1.0)
        dense = RidgeModel(factored.dim, 1.0)
        rng = np.random.default_rng(10)
        for _ in range(10):
            context = {name: float(rng.normal()) for name in spec.shared}
            rows = layout.rows(context, [{name: float(rng.normal()) for name in spec.action} for _ in range(3)])
            learn_both(factored, dense, rows, 1, float(rng.normal()))
            assert_same_answers(factored, dense, rows)

    def test_untrained_model_predicts_zero_with_the_prior_width(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        model = FactoredRidge(layout, 4.0)
        rows = layout.rows({"s0": 1.0}, [{"c0": 1.0}])

        assert model.mean(rows).tolist() == [0.0]
        # x = [shared (1, 0, 0), action c0 = 1, c0 (x) shared = (1, 0, 0)]: |x|^2 = 3, so width = sqrt(3 / 4).
        np.testing.assert_allclose(model.width(rows), [np.sqrt(0.75)])

    @pytest.mark.parametrize("crossed", [1, 2])
    def test_the_state_is_the_same_bits_however_the_examples_are_batched(self, crossed: int) -> None:
        layout = FeatureLayout(random_rows_spec(True))
        rng = np.random.default_rng(11)
        examples = random_examples(rng, 60, crossed=crossed)
        one_by_one = FactoredRidge(layout, 1.0)
        for example in examples:
            one_by_one.learn(layout.learn_rows([example]))
        in_batches = FactoredRidge(layout, 1.0)
        cuts = [0, 7, 8, 31, 60]
        for start, stop in itertools.pairwise(cuts):
            in_batches.learn(layout.learn_rows(examples[start:stop]))
        at_once = FactoredRidge(layout, 1.0)
        at_once.learn(layout.learn_rows(examples))

        rows = layout.rows(random_context(rng), random_candidates(rng, 4))
        loaded = FactoredRidge(layout, 1.0)
        loaded.load(one_by_one.to_bytes())
        for model in (in_batches, at_once):
            assert same_arrays(model.to_bytes(), one_by_one.to_bytes())
            assert model.is_dense == one_by_one.is_dense == (crossed == 2)
            np.testing.assert_array_equal(model.mean(rows), loaded.mean(rows))
            np.testing.assert_array_equal(model.covariance(rows), loaded.covariance(rows))

    def test_the_order_of_the_examples_does_not_change_a_bit(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        rng = np.random.default_rng(12)
        examples = random_examples(rng, 40, crossed=1)
        forward, backward = FactoredRidge(layout, 2.0), FactoredRidge(layout, 2.0)

        forward.learn(layout.learn_rows(examples))
        backward.learn(layout.learn_rows(examples[::-1]))

        assert same_arrays(forward.to_bytes(), backward.to_bytes())
        rows = layout.rows(random_context(rng), random_candidates(rng, 3))
        np.testing.assert_array_equal(forward.width(rows), backward.width(rows))

    def test_a_factored_inverse_state_from_before_the_statistics_is_converted_to_them(self) -> None:
        layout = FeatureLayout(random_rows_spec(True))
        model = FactoredRidge(layout, 1.0)
        model.learn(layout.learn_rows(random_examples(np.random.default_rng(13), 30, crossed=1)))
        old = io.BytesIO()
        # The format before the statistics: the factored inverse and the reward-weighted sums.
        np.savez(
            old,
            schur_inv=model._schur_inv,
            e=model._e,
            block_inv=model._block_inv,
            b_border=model._r_border * 2.0 ** (-2 * GRID_BITS),
            b_blocks=model._r_blocks * 2.0 ** (-2 * GRID_BITS),
            n=np.array(model.n),
        )
        converted = FactoredRidge(layout, 1.0)

        converted.load(old.getvalue())

        assert converted.migrated
        assert not model.migrated
        assert converted.n == 30
        # Well conditioned: inverting the inverse lands back on the very same integers.
        for name in ("_g_border", "_g_cross", "_g_blocks", "_r_border", "_r_blocks"):
            np.testing.assert_array_equal(getattr(converted, name), getattr(model, name), err_msg=name)

    def test_a_value_too_large_for_the_exact_sums_is_refused(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        model = FactoredRidge(layout, 1.0)
        example = LoggedReward(shared={"s0": 1.0}, action={"c0": 2.0**11}, propensity=0.5, reward=1.0)

        with pytest.raises(ValueError, match="too large to learn"):
            model.learn(layout.learn_rows([example]))
        assert model.n == 0

    def test_a_batch_whose_products_exceed_float_precision_is_learned_in_exact_chunks(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))
        # Each row adds up to (1000 * 2^16)^2 ~ 2^46; 300 rows pass 2^53, so the batch is cut.
        examples = [
            LoggedReward(shared={"s0": 1000.0 - n}, action={"c1": 1.0, "effort": 3.0}, propensity=0.5, reward=1.0)
            for n in range(300)
        ]
        at_once, one_by_one = FactoredRidge(layout, 1.0), FactoredRidge(layout, 1.0)

        at_once.learn(layout.learn_rows(examples))
        for example in examples:
            one_by_one.learn(layout.learn_rows([example]))

        assert same_arrays(at_once.to_bytes(), one_by_one.to_bytes())
        expected = sum(round((1000.0 - n) * 2**GRID_BITS) ** 2 for n in range(300))
        assert int(at_once._g_blocks[1][0, 0]) == expected


class TestLearnRows:
    @pytest.mark.parametrize("shared_weights", [False, True])
    @pytest.mark.parametrize("normalize", [False, True])
    def test_batch_rows_equal_each_example_s_own_rows(self, normalize: bool, shared_weights: bool) -> None:
        layout = FeatureLayout(random_rows_spec(normalize), shared_weights=shared_weights)
        examples = random_examples(np.random.default_rng(14), 12, crossed=1)

        batch = layout.learn_rows(examples)

        expected = np.vstack([layout.rows(e.shared, [e.action]).dense() for e in examples])
        np.testing.assert_allclose(batch.dense(), expected, rtol=1e-15, atol=1e-15)
        assert batch.reward.tolist() == [e.reward for e in examples]

    def test_unknown_features_raise_key_errors(self) -> None:
        layout = FeatureLayout(random_rows_spec(False))

        with pytest.raises(KeyError, match="unknown action feature 'w'"):
            layout.learn_rows([LoggedReward(shared={}, action={"w": 1.0}, propensity=1.0, reward=0.0)])
        with pytest.raises(KeyError, match="unknown shared feature 'x'"):
            layout.learn_rows([LoggedReward(shared={"x": 1.0}, action={}, propensity=1.0, reward=0.0)])


def random_examples(rng: np.random.Generator, n: int, *, crossed: int) -> list[LoggedReward]:
    """`n` examples; with crossed=2 one in the middle switches on two crossed blocks."""
    return [
        LoggedReward(
            shared=random_context(rng),
            action=random_candidates(rng, 1, crossed=crossed if i == n // 2 else 1)[0],
            propensity=0.5,
            reward=float(rng.choice([1.0, 0.3, 0.0, -0.5])),
        )
        for i in range(n)
    ]


def derived_exactly(model: FactoredRidge) -> bool:
    # A call, not the property: mypy would otherwise narrow it to one value for the rest of a test.
    return model.derived_exactly


def same_arrays(left: bytes, right: bytes) -> bool:
    with np.load(io.BytesIO(left)) as a, np.load(io.BytesIO(right)) as b:
        return set(a.files) == set(b.files) and all(
            a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a.files
        )


def hashed_rows_spec(normalize: bool) -> FeatureSpec:
    return FeatureSpec(
        name="random-hashed/v1",
        shared=("s0", "s1", "s2"),
        action=("c0", "c1", "c2", "effort"),
        action_cross=("c0", "c1", "c2"),
        normalize=normalize,
        shared_bits=3,
        action_bits=4,
        seed=HASHED_SEED,
    )


HASHED_SEED = collision_free_seed(
    FeatureSpec(name="s", shared=("s0", "s1", "s2"), action=("c0", "c1", "c2", "effort"), shared_bits=3, action_bits=4)
)


def assert_readout_answers_like_the_model(model: FactoredRidge, rows: DecisionRows) -> None:
    readout = RidgeReadout.of(model)
    full = rows.candidate_rows()
    scale = np.ones(len(rows)) if rows.scale is None else rows.scale
    z = rows.z * scale[:, None]
    np.testing.assert_allclose(z @ readout.weights(rows), model.mean(full), atol=1e-12)
    np.testing.assert_allclose(z @ readout.form(rows) @ z.T, model.covariance(full), atol=1e-12)
    # [Q | w], which the optimistic policies score with, answers the same up to rounding.
    scoring = readout.scoring(rows)
    np.testing.assert_allclose(z @ scoring[:, -1], model.mean(full), atol=1e-12)
    np.testing.assert_allclose(z @ scoring[:, :-1] @ z.T, model.covariance(full), atol=1e-12)


class TestRidgeReadout:
    @pytest.mark.parametrize("hashed", [False, True], ids=["declared", "hashed"])
    @pytest.mark.parametrize("shared_weights", [False, True])
    @pytest.mark.parametrize("normalize", [False, True])
    @pytest.mark.parametrize("crossed", [1, 2], ids=["factored", "dense"])
    def test_answers_equal_the_models_own(
        self, hashed: bool, shared_weights: bool, normalize: bool, crossed: int
    ) -> None:
        spec = hashed_rows_spec(normalize) if hashed else random_rows_spec(normalize)
        layout = FeatureLayout(spec, shared_weights=shared_weights)
        model = FactoredRidge(layout, 0.7)
        rng = np.random.default_rng(11)
        for _ in range(30):
            context = random_context(rng)
            rows = layout.decision(context, random_candidates(rng, 5, crossed=int(rng.integers(0, crossed + 1))))
            assert_readout_answers_like_the_model(model, rows)
            model.update(layout.rows(context, random_candidates(rng, 1, crossed=crossed)), float(rng.normal()))

        assert model.is_dense == (crossed == 2)

    def test_candidates_using_no_border_column_are_answered_too(self) -> None:
        layout = FeatureLayout(random_rows_spec(True), shared_weights=False)
        model = FactoredRidge(layout, 1.0)
        rng = np.random.default_rng(12)
        for _ in range(5):
            model.update(layout.rows(random_context(rng), random_candidates(rng, 1)), 1.0)

        rows = layout.decision(random_context(rng), [{}, {}])

        assert rows.columns.size == 0
        assert_readout_answers_like_the_model(model, rows)


LINEAR_SPECS: dict[str, PolicySpec] = {
    "epsilon_greedy": EpsilonGreedySpec(epsilon=0.2),
    "linucb": LinUCBSpec(alpha=0.5, floor=0.1),
    "linear_ts": LinearTSSpec(scale=0.3, floor=0.1, draws=50),
    "ridge_igw": RidgeIGWSpec(gamma=50.0, alpha=0.1, floor=0.1),
}


class TestPreparedCandidates:
    @pytest.mark.parametrize("name", sorted(LINEAR_SPECS))
    @pytest.mark.parametrize("explore", [True, False])
    def test_a_candidate_set_decides_exactly_like_the_plain_features(self, name: str, explore: bool) -> None:
        spec = hashed_rows_spec(True)
        rng = np.random.default_rng(13)
        batch = [
            LoggedReward(
                shared=random_context(rng), action=random_candidates(rng, 1)[0], propensity=0.5, reward=float(r)
            )
            for r in rng.random(30) < 0.4
        ]
        policy = build_policy(LINEAR_SPECS[name], features=spec)
        policy.learn(batch)
        for seed in range(10):
            context, candidates = random_context(rng), random_candidates(rng, 6)
            prepared = CandidateSet(spec, candidates)

            from_features = policy.pick(
                context=context, candidates=candidates, rng=np.random.default_rng(seed), explore=explore
            )
            from_set = policy.pick(
                context=dict(context), candidates=prepared, rng=np.random.default_rng(seed), explore=explore
            )

            assert from_set == from_features

    def test_a_set_prepared_for_another_spec_is_featurized_again(self) -> None:
        policy = LinUCBPolicy(LinUCBSpec(), features=SPEC)
        other = FeatureSpec(name="other/v1", shared=("bias",), action=("a1", "a0", "a2"), action_cross=("a1",))

        picked = policy.pick(context=CONTEXT, candidates=CandidateSet(other, CANDIDATES), rng=np.random.default_rng(1))
        plain = policy.pick(context=CONTEXT, candidates=list(CANDIDATES), rng=np.random.default_rng(1))

        assert picked == plain

    def test_pick_reads_the_model_state_after_learning_and_loading(self) -> None:
        policy = LinUCBPolicy(LinUCBSpec(alpha=0.0, floor=0.0), features=SPEC)
        assert pick(policy, 0).probabilities == (1 / 3, 1 / 3, 1 / 3)

        policy.learn(rewarding_batch())
        learned = pick(policy, 0).probabilities
        fresh = LinUCBPolicy(LinUCBSpec(alpha=0.0, floor=0.0), features=SPEC)
        pick(fresh, 0)
        fresh.load_state(policy.state_bytes())

        assert learned[BEST] == 1.0
        assert pick(fresh, 0).probabilities == learned

    def test_a_hashed_spec_learns_and_picks_on_features_it_does_not_declare(self) -> None:
        spec = hashed_rows_spec(False)
        policy = LinUCBPolicy(LinUCBSpec(alpha=0.0, floor=0.0), features=spec)
        context = {"s0": 1.0, "calendar_busy": 1.0}
        candidates: list[Features] = [{"c0": 1.0, "new_kind": 1.0}, {"c1": 1.0}]
        batch = [LoggedReward(shared=context, action=candidates[0], propensity=0.5, reward=1.0)] * 5

        policy.learn(batch)

        assert policy.pick(context=context, candidates=candidates, rng=np.random.default_rng(0)).probabilities == (
            1.0,
            0.0,
        )
