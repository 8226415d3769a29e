"""Unit tests of the off-policy estimators: validation, exact values on a tiny log, and coverage on synthetic logs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar

import numpy as np
import pytest

from tipwise.ml.pipelines import DR, IPS, SNIPS, Estimate, Estimator, LoggedRound, cross_fitted_rewards
from tipwise.ml.pipelines.evaluation import Matrix, Vector

Z95 = NormalDist().inv_cdf(0.975)
ESTIMATOR_TYPES: dict[str, Callable[..., Estimator]] = {"ips": IPS, "snips": SNIPS, "dr": DR}

# -- a log small enough to compute by hand -------------------------------------------------------------------------
#
# round  action  propensity  reward  target        w = target[action] / propensity
#   0      0        0.5       1.0    (0.8, 0.2)    1.6
#   1      1        0.25      0.0    (0.5, 0.5)    2.0
#   2      0        0.8       0.5    (0.4, 0.6)    0.5

TWO = np.eye(2)
TINY_LOG = [
    LoggedRound(candidates=TWO, action=0, propensity=0.5, reward=1.0),
    LoggedRound(candidates=TWO, action=1, propensity=0.25, reward=0.0),
    LoggedRound(candidates=TWO, action=0, propensity=0.8, reward=0.5),
]
TINY_TARGET = [np.array([0.8, 0.2]), np.array([0.5, 0.5]), np.array([0.4, 0.6])]
TINY_PREDICTIONS = [np.array([0.6, 0.2]), np.array([0.5, 0.1]), np.array([0.4, 0.3])]


def sample_std_error(terms: list[float]) -> float:
    mean = sum(terms) / len(terms)
    return math.sqrt(sum((t - mean) ** 2 for t in terms) / (len(terms) - 1)) / math.sqrt(len(terms))


class TestLoggedRound:
    def test_it_counts_its_candidates(self) -> None:
        assert LoggedRound(candidates=np.zeros((4, 3)), action=3, propensity=0.25, reward=1.0).k == 4

    def test_candidates_without_features_are_enough_for_ips(self) -> None:
        row = LoggedRound(candidates=np.zeros((2, 0)), action=1, propensity=0.5, reward=1.0)
        assert IPS().estimate([row, row], [[0.0, 1.0], [0.0, 1.0]]).value == pytest.approx(2.0)

    @pytest.mark.parametrize("propensity", [0.0, -0.1, 1.5, math.nan])
    def test_a_propensity_outside_zero_to_one_is_rejected(self, propensity: float) -> None:
        with pytest.raises(ValueError, match="propensity must be within"):
            LoggedRound(candidates=TWO, action=0, propensity=propensity, reward=1.0)

    def test_a_propensity_a_rounding_error_above_one_is_accepted(self) -> None:
        row = LoggedRound(candidates=TWO, action=0, propensity=1.0 + 2e-16, reward=1.0)
        assert row.propensity > 1.0

    @pytest.mark.parametrize("action", [-1, 2])
    def test_an_action_that_is_not_a_candidate_is_rejected(self, action: int) -> None:
        with pytest.raises(ValueError, match=f"action index {action} is not among the 2 candidates"):
            LoggedRound(candidates=TWO, action=action, propensity=0.5, reward=1.0)

    @pytest.mark.parametrize("reward", [math.nan, math.inf])
    def test_a_reward_that_is_not_finite_is_rejected(self, reward: float) -> None:
        with pytest.raises(ValueError, match="reward must be finite"):
            LoggedRound(candidates=TWO, action=0, propensity=0.5, reward=reward)

    @pytest.mark.parametrize("candidates", [np.zeros(3), np.zeros((0, 2))])
    def test_candidates_must_be_a_non_empty_matrix(self, candidates: Matrix) -> None:
        with pytest.raises(ValueError, match="k x d matrix"):
            LoggedRound(candidates=candidates, action=0, propensity=0.5, reward=1.0)


class TestEstimatorSettings:
    @pytest.mark.parametrize("name", sorted(ESTIMATOR_TYPES))
    @pytest.mark.parametrize("clip", [0.0, -1.0, math.nan, math.inf])
    def test_a_clip_that_is_not_a_positive_finite_weight_is_rejected(self, name: str, clip: float) -> None:
        with pytest.raises(ValueError, match="clip must be a positive finite weight"):
            ESTIMATOR_TYPES[name](clip=clip)

    @pytest.mark.parametrize("name", sorted(ESTIMATOR_TYPES))
    @pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1, math.nan])
    def test_a_confidence_outside_zero_to_one_is_rejected(self, name: str, confidence: float) -> None:
        with pytest.raises(ValueError, match=r"confidence must be within \(0, 1\)"):
            ESTIMATOR_TYPES[name](confidence=confidence)

    @pytest.mark.parametrize("ridge", [0.0, -1.0, math.nan])
    def test_dr_needs_a_positive_ridge_penalty(self, ridge: float) -> None:
        with pytest.raises(ValueError, match="ridge must be a positive finite penalty"):
            DR(ridge=ridge)

    def test_dr_needs_at_least_two_folds_to_cross_fit(self) -> None:
        with pytest.raises(ValueError, match="at least 2 folds"):
            DR(folds=1)

    def test_estimators_are_frozen_specs_with_short_names(self) -> None:
        assert [IPS.name, SNIPS.name, DR.name] == ["ips", "snips", "dr"]
        assert IPS(clip=10.0) == IPS(clip=10.0)
        with pytest.raises(AttributeError):
            IPS().clip = 2.0  # type: ignore[misc]


class TestInputValidation:
    @pytest.mark.parametrize("name", sorted(ESTIMATOR_TYPES))
    def test_logs_and_targets_of_different_lengths_are_rejected(self, name: str) -> None:
        with pytest.raises(ValueError, match="got 3 logged rounds but 2 target distributions"):
            ESTIMATOR_TYPES[name]().estimate(TINY_LOG, TINY_TARGET[:2])

    @pytest.mark.parametrize("name", sorted(ESTIMATOR_TYPES))
    def test_a_single_round_is_not_enough_for_an_interval(self, name: str) -> None:
        with pytest.raises(ValueError, match="at least 2 logged rounds, got 1"):
            ESTIMATOR_TYPES[name]().estimate(TINY_LOG[:1], TINY_TARGET[:1])

    def test_a_target_with_the_wrong_number_of_candidates_is_rejected(self) -> None:
        target = [TINY_TARGET[0], np.array([0.2, 0.3, 0.5]), TINY_TARGET[2]]
        with pytest.raises(ValueError, match=r"round 1: target has shape \(3,\)"):
            IPS().estimate(TINY_LOG, target)

    @pytest.mark.parametrize("bad", [[0.5, 0.6], [1.2, -0.2], [math.nan, 1.0]])
    def test_a_target_that_is_not_a_distribution_is_rejected(self, bad: list[float]) -> None:
        target = [TINY_TARGET[0], TINY_TARGET[1], np.array(bad)]
        with pytest.raises(ValueError, match="round 2: target probabilities must be non-negative and sum to 1"):
            SNIPS().estimate(TINY_LOG, target)

    def test_dr_rejects_predictions_for_a_different_number_of_rounds(self) -> None:
        with pytest.raises(ValueError, match="got 3 logged rounds but 2 reward predictions"):
            DR().estimate(TINY_LOG, TINY_TARGET, predictions=TINY_PREDICTIONS[:2])

    def test_dr_rejects_predictions_that_do_not_cover_every_candidate(self) -> None:
        predictions = [TINY_PREDICTIONS[0], np.array([0.5]), TINY_PREDICTIONS[2]]
        with pytest.raises(ValueError, match="round 1: predictions must be 2 finite rewards"):
            DR().estimate(TINY_LOG, TINY_TARGET, predictions=predictions)

    def test_snips_is_undefined_when_the_target_never_takes_a_logged_action(self) -> None:
        target = [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])]
        with pytest.raises(ValueError, match="SNIPS is undefined"):
            SNIPS().estimate(TINY_LOG, target)


class TestIPS:
    def test_the_value_is_the_mean_of_weighted_rewards(self) -> None:
        terms = [1.6 * 1.0, 2.0 * 0.0, 0.5 * 0.5]
        estimate = IPS().estimate(TINY_LOG, TINY_TARGET)

        assert estimate.value == pytest.approx(sum(terms) / 3)
        assert estimate.std_error == pytest.approx(sample_std_error(terms))
        assert estimate.lower == pytest.approx(estimate.value - Z95 * estimate.std_error)
        assert estimate.upper == pytest.approx(estimate.value + Z95 * estimate.std_error)
        assert (estimate.estimator, estimate.n, estimate.confidence) == ("ips", 3, 0.95)
        assert estimate.effective_sample_size == pytest.approx((1.6 + 2.0 + 0.5) ** 2 / (1.6**2 + 2.0**2 + 0.5**2))

    def test_clipping_caps_each_weight(self) -> None:
        estimate = IPS(clip=1.5).estimate(TINY_LOG, TINY_TARGET)
        assert estimate.value == pytest.approx((1.5 * 1.0 + 1.5 * 0.0 + 0.5 * 0.5) / 3)

    def test_a_lower_confidence_gives_a_narrower_interval(self) -> None:
        wide = IPS(confidence=0.99).estimate(TINY_LOG, TINY_TARGET)
        narrow = IPS(confidence=0.5).estimate(TINY_LOG, TINY_TARGET)
        assert narrow.upper - narrow.lower == pytest.approx(
            (wide.upper - wide.lower) * NormalDist().inv_cdf(0.75) / NormalDist().inv_cdf(0.995)
        )

    def test_the_logging_policy_itself_is_estimated_by_the_logged_average(self) -> None:
        logging = [np.array([0.5, 0.5]), np.array([0.75, 0.25]), np.array([0.8, 0.2])]
        estimate = IPS().estimate(TINY_LOG, logging)
        assert estimate.value == pytest.approx(0.5)
        assert estimate.effective_sample_size == pytest.approx(3.0)


class TestSNIPS:
    def test_the_value_is_the_weighted_mean_of_rewards(self) -> None:
        value = (1.6 * 1.0 + 2.0 * 0.0 + 0.5 * 0.5) / (1.6 + 2.0 + 0.5)
        mean_weight = (1.6 + 2.0 + 0.5) / 3
        influence = [w * (r - value) / mean_weight for w, r in [(1.6, 1.0), (2.0, 0.0), (0.5, 0.5)]]
        estimate = SNIPS().estimate(TINY_LOG, TINY_TARGET)

        assert estimate.value == pytest.approx(value)
        assert estimate.std_error == pytest.approx(math.sqrt(sum(t**2 for t in influence) / 2) / math.sqrt(3))
        assert estimate.lower == pytest.approx(value - Z95 * estimate.std_error)
        assert estimate.upper == pytest.approx(value + Z95 * estimate.std_error)

    def test_clipping_caps_each_weight(self) -> None:
        estimate = SNIPS(clip=1.5).estimate(TINY_LOG, TINY_TARGET)
        assert estimate.value == pytest.approx((1.5 * 1.0 + 0.5 * 0.5) / (1.5 + 1.5 + 0.5))

    def test_the_logging_policy_itself_is_estimated_by_the_logged_average_with_its_standard_error(self) -> None:
        logging = [np.array([0.5, 0.5]), np.array([0.75, 0.25]), np.array([0.8, 0.2])]
        estimate = SNIPS().estimate(TINY_LOG, logging)
        assert estimate.value == pytest.approx(0.5)
        assert estimate.std_error == pytest.approx(sample_std_error([1.0, 0.0, 0.5]))


class TestDR:
    def test_the_value_is_the_model_value_plus_weighted_residuals(self) -> None:
        terms = [
            (0.8 * 0.6 + 0.2 * 0.2) + 1.6 * (1.0 - 0.6),
            (0.5 * 0.5 + 0.5 * 0.1) + 2.0 * (0.0 - 0.1),
            (0.4 * 0.4 + 0.6 * 0.3) + 0.5 * (0.5 - 0.4),
        ]
        estimate = DR().estimate(TINY_LOG, TINY_TARGET, predictions=TINY_PREDICTIONS)

        assert estimate.value == pytest.approx(sum(terms) / 3)
        assert estimate.value == pytest.approx(0.55)
        assert estimate.std_error == pytest.approx(sample_std_error(terms))
        assert estimate.lower == pytest.approx(0.55 - Z95 * estimate.std_error)

    def test_clipping_caps_the_weights_of_the_residuals(self) -> None:
        estimate = DR(clip=1.0).estimate(TINY_LOG, TINY_TARGET, predictions=TINY_PREDICTIONS)
        assert estimate.value == pytest.approx((0.52 + 0.4 + 0.3 - 0.1 + 0.34 + 0.05) / 3)

    def test_a_perfect_reward_model_leaves_only_its_own_value(self) -> None:
        rows = [LoggedRound(candidates=TWO, action=i % 2, propensity=0.5, reward=float(i % 2)) for i in range(4)]
        perfect = [np.array([0.0, 1.0])] * 4
        estimate = DR().estimate(rows, [np.array([0.3, 0.7])] * 4, predictions=perfect)
        assert estimate.value == pytest.approx(0.7)
        assert estimate.std_error == pytest.approx(0.0)

    def test_without_predictions_it_fits_a_cross_fitted_ridge_model(self) -> None:
        estimate = DR(seed=3).estimate(TINY_LOG * 4, TINY_TARGET * 4)
        expected = DR(seed=3).estimate(
            TINY_LOG * 4, TINY_TARGET * 4, predictions=cross_fitted_rewards(TINY_LOG * 4, seed=3)
        )
        assert estimate.value == pytest.approx(expected.value)
        assert estimate.std_error == pytest.approx(expected.std_error)


class TestCrossFittedRewards:
    ROWS: ClassVar[list[LoggedRound]] = [
        LoggedRound(candidates=np.array([[1.0, 0.0], [1.0, 1.0]]), action=i % 2, propensity=0.5, reward=float(i % 3))
        for i in range(10)
    ]

    def test_a_rounds_own_reward_never_moves_its_prediction(self) -> None:
        before = cross_fitted_rewards(self.ROWS, seed=1)
        changed = list(self.ROWS)
        changed[4] = LoggedRound(candidates=self.ROWS[4].candidates, action=0, propensity=0.5, reward=100.0)
        after = cross_fitted_rewards(changed, seed=1)

        np.testing.assert_allclose(after[4], before[4])
        assert any(not np.allclose(a, b) for a, b in zip(after, before, strict=True))

    def test_the_same_seed_gives_the_same_predictions(self) -> None:
        first = cross_fitted_rewards(self.ROWS, seed=7, folds=3)
        second = cross_fitted_rewards(self.ROWS, seed=7, folds=3)
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
        assert [p.shape for p in first] == [(2,)] * 10

    def test_it_needs_feature_vectors(self) -> None:
        rows = [LoggedRound(candidates=np.zeros((2, 0)), action=0, propensity=0.5, reward=1.0)] * 2
        with pytest.raises(ValueError, match="feature vectors of one positive dimension"):
            cross_fitted_rewards(rows)

    def test_it_needs_at_least_as_many_rounds_as_folds(self) -> None:
        with pytest.raises(ValueError, match="needs 2 <= folds <= rounds"):
            cross_fitted_rewards(self.ROWS[:2], folds=3)


# -- coverage on synthetic logs with a known truth -------------------------------------------------------------------
#
# A world of 40 contexts with 5 candidates each (3 features plus a constant). The expected reward is
# logistic in the features, so the linear reward model of DR is misspecified on purpose. The logging policy
# prefers the wrong candidates (a softmax mixed with 30% uniform, so every propensity is >= 0.06); the target
# is a softmax on the true scores mixed with 10% uniform. Its value is computed exactly over the 40 contexts,
# which each round draws uniformly. Every replication draws its own log from a fixed seed.

CONTEXTS, K = 40, 5
ROUNDS, REPLICATIONS = 400, 200


def _softmax(scores: Matrix) -> Matrix:
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    result: Matrix = e / e.sum(axis=-1, keepdims=True)
    return result


WORLD_RNG = np.random.default_rng(20261125)
FEATURES = np.concatenate([np.ones((CONTEXTS, K, 1)), WORLD_RNG.normal(size=(CONTEXTS, K, 3))], axis=2)
TRUE_SCORES = FEATURES @ np.array([0.0, 1.0, -0.6, 0.4])
TRUE_MEAN = 1.0 / (1.0 + np.exp(-TRUE_SCORES))
LOGGING = 0.7 * _softmax(FEATURES @ np.array([0.0, -0.5, 0.5, 0.0])) + 0.3 / K
TARGET = 0.9 * _softmax(2.0 * TRUE_SCORES) + 0.1 / K
TRUE_VALUE = float(np.mean(np.sum(TARGET * TRUE_MEAN, axis=1)))
LOGGING_VALUE = float(np.mean(np.sum(LOGGING * TRUE_MEAN, axis=1)))


@dataclass(frozen=True)
class Replications:
    estimates: dict[str, list[Estimate]]

    def coverage(self, name: str) -> float:
        return sum(e.lower <= TRUE_VALUE <= e.upper for e in self.estimates[name]) / REPLICATIONS

    def values(self, name: str) -> Vector:
        return np.array([e.value for e in self.estimates[name]])


def draw_log(seed: int) -> tuple[list[LoggedRound], list[Vector]]:
    """Draw one log of the logging policy: contexts, actions by their propensities, Bernoulli rewards."""
    rng = np.random.default_rng([7, seed])
    contexts = rng.integers(CONTEXTS, size=ROUNDS)
    actions = np.minimum((rng.random(ROUNDS)[:, None] > np.cumsum(LOGGING[contexts], axis=1)).sum(axis=1), K - 1)
    rewards = (rng.random(ROUNDS) < TRUE_MEAN[contexts, actions]).astype(np.float64)
    logs = [
        LoggedRound(candidates=FEATURES[c], action=int(a), propensity=float(LOGGING[c, a]), reward=float(r))
        for c, a, r in zip(contexts, actions, rewards, strict=True)
    ]
    return logs, [TARGET[c] for c in contexts]


@pytest.fixture(scope="module")
def replications() -> Replications:
    estimators: dict[str, Estimator] = {"ips": IPS(), "snips": SNIPS(), "dr": DR()}
    estimates: dict[str, list[Estimate]] = {name: [] for name in estimators}
    for seed in range(REPLICATIONS):
        logs, target = draw_log(seed)
        for name, estimator in estimators.items():
            estimates[name].append(estimator.estimate(logs, target))
    return Replications(estimates)


class TestCoverageOnSyntheticLogs:
    def test_the_logged_average_is_far_from_the_target_value_so_a_naive_estimate_would_fail(self) -> None:
        assert TRUE_VALUE - LOGGING_VALUE > 0.2
        assert float(np.max(TARGET / LOGGING)) < 15.0

    @pytest.mark.parametrize("name", ["ips", "snips", "dr"])
    def test_the_95_percent_interval_covers_the_true_value_about_95_percent_of_the_time(
        self, replications: Replications, name: str
    ) -> None:
        assert 0.9 <= replications.coverage(name) <= 0.99, replications.coverage(name)

    @pytest.mark.parametrize("name", ["ips", "snips", "dr"])
    def test_the_bias_is_within_the_monte_carlo_error(self, replications: Replications, name: str) -> None:
        values = replications.values(name)
        monte_carlo_error = float(values.std(ddof=1)) / math.sqrt(REPLICATIONS)
        assert abs(float(values.mean()) - TRUE_VALUE) <= 3 * monte_carlo_error
        assert abs(float(values.mean()) - TRUE_VALUE) < 0.01

    def test_snips_and_dr_vary_less_than_ips(self, replications: Replications) -> None:
        spread = {name: float(replications.values(name).std(ddof=1)) for name in ("ips", "snips", "dr")}
        assert spread["snips"] < spread["ips"]
        assert spread["dr"] < spread["ips"]

    @pytest.mark.parametrize("name", ["ips", "snips", "dr"])
    def test_the_stated_standard_error_matches_the_spread_across_replications(
        self, replications: Replications, name: str
    ) -> None:
        stated = float(np.mean([e.std_error for e in replications.estimates[name]]))
        observed = float(replications.values(name).std(ddof=1))
        assert stated == pytest.approx(observed, rel=0.2)
