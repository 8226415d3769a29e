"""Off-policy evaluation: how another policy would have done on the decisions already logged.

Three estimators, with the definitions of Open Bandit Pipeline (Saito et al.,
obp 0.4: `InverseProbabilityWeighting`, `SelfNormalizedInverseProbabilityWeighting`,
`DoublyRobust`), each a small validated frozen spec whose `estimate(logs,
target)` returns an `Estimate` with a confidence interval. For round i with
logged action a_i, logging propensity p_i, reward r_i and target distribution
pi_i over the round's candidates, the importance weight is
w_i = pi_i(a_i) / p_i (capped at `clip` when given) and

- IPS   V = mean_i(w_i r_i)
- SNIPS V = sum_i(w_i r_i) / sum_i(w_i)
- DR    V = mean_i(sum_a pi_i(a) q_i(a) + w_i (r_i - q_i(a_i))), q a reward model.

Intervals are normal approximations, documented on each estimator: IPS and
DR on the per-round terms, SNIPS on its linearization (delta method). They
assume rounds are independent given the policies, which holds for the
logging process up to the policy's own learning between rounds.

The input is neutral (numpy only): a `LoggedRound` per decision and, per
round, the target policy's probability of every candidate. Nothing here does
I/O; building these inputs from Tipwise's decision log is `report`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from tipwise.ml.serving import RidgeModel

Vector = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]
TargetProbabilities = Sequence[npt.ArrayLike]

MIN_ROUNDS = 2  # a sample variance needs two rounds
PROBABILITY_TOLERANCE = 1e-6


@dataclass(frozen=True, kw_only=True, eq=False)
class LoggedRound:
    """One logged decision as off-policy evaluation sees it.

    `candidates` holds one feature vector per candidate (shape k x d; the DR
    reward model reads them, IPS and SNIPS only need k, so d may be 0);
    `action` is the index of the candidate that was shown, `propensity` the
    probability with which the logging policy chose it, `reward` what it got.
    """

    candidates: Matrix
    action: int
    propensity: float
    reward: float

    def __post_init__(self) -> None:
        candidates = np.asarray(self.candidates, dtype=np.float64)
        if candidates.ndim != 2 or candidates.shape[0] < 1:
            raise ValueError("candidates must be a k x d matrix with at least one candidate")
        object.__setattr__(self, "candidates", candidates)
        if not 0 <= self.action < candidates.shape[0]:
            raise ValueError(f"action index {self.action} is not among the {candidates.shape[0]} candidates")
        # Tolerate float rounding above 1 (a mixture like (1 - f) + f / k can land on 1 + 2e-16).
        if not 0.0 < self.propensity <= 1.0 + PROBABILITY_TOLERANCE:
            raise ValueError(f"propensity must be within (0, 1], got {self.propensity}")
        if not math.isfinite(self.reward):
            raise ValueError("reward must be finite")

    @property
    def k(self) -> int:
        """Return the number of candidates."""
        return int(self.candidates.shape[0])


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """An estimated policy value with its confidence interval."""

    estimator: str
    value: float
    lower: float
    upper: float
    std_error: float
    confidence: float
    n: int
    # (sum w)^2 / sum w^2: how many rounds the weighted sample is worth; far below n means a few rounds dominate.
    effective_sample_size: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "std_error": self.std_error,
            "confidence": self.confidence,
            "n": self.n,
            "effective_sample_size": self.effective_sample_size,
        }


class Estimator(Protocol):
    """What the report needs of an estimator: a short name, its confidence level, and `estimate`."""

    name: ClassVar[str]

    @property
    def confidence(self) -> float: ...

    def estimate(self, logs: Sequence[LoggedRound], target: TargetProbabilities) -> Estimate: ...


def _check_settings(clip: float | None, confidence: float) -> None:
    if clip is not None and not (math.isfinite(clip) and clip > 0.0):
        raise ValueError(f"clip must be a positive finite weight or None, got {clip}")
    if not (math.isfinite(confidence) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True, kw_only=True, eq=False)
class _Columns:
    """The validated inputs as arrays, one entry per round."""

    rewards: Vector
    propensities: Vector
    target_of_action: Vector
    target: tuple[Vector, ...]

    @classmethod
    def of(cls, logs: Sequence[LoggedRound], target: TargetProbabilities) -> _Columns:
        if len(logs) != len(target):
            raise ValueError(f"got {len(logs)} logged rounds but {len(target)} target distributions")
        if len(logs) < MIN_ROUNDS:
            raise ValueError(f"off-policy evaluation needs at least {MIN_ROUNDS} logged rounds, got {len(logs)}")
        distributions = _distributions(logs, target)
        return cls(
            rewards=np.array([row.reward for row in logs], dtype=np.float64),
            propensities=np.array([row.propensity for row in logs], dtype=np.float64),
            target_of_action=np.array([d[row.action] for row, d in zip(logs, distributions, strict=True)]),
            target=distributions,
        )

    def weights(self, clip: float | None) -> Vector:
        weights: Vector = self.target_of_action / self.propensities
        return weights if clip is None else np.minimum(weights, clip)


def _distributions(logs: Sequence[LoggedRound], target: TargetProbabilities) -> tuple[Vector, ...]:
    """Return the target distributions as arrays; raises ValueError naming the first malformed round."""
    arrays = tuple(np.asarray(probabilities, dtype=np.float64) for probabilities in target)
    for index, (row, p) in enumerate(zip(logs, arrays, strict=True)):
        if p.shape != (row.k,):
            raise ValueError(
                f"round {index}: target has shape {p.shape}, expected one probability per candidate ({row.k})"
            )
    # One vectorized pass over all rounds: this runs for every estimate of every policy.
    flat = np.concatenate(arrays)
    starts = np.cumsum([0] + [p.size for p in arrays[:-1]])
    bad_value = ~np.isfinite(flat) | (flat < 0.0)
    bad_rounds = (np.add.reduceat(bad_value.astype(np.int64), starts) > 0) | (
        np.abs(np.add.reduceat(np.where(bad_value, 0.0, flat), starts) - 1.0) > PROBABILITY_TOLERANCE
    )
    if bad_rounds.any():
        index = int(np.flatnonzero(bad_rounds)[0])
        raise ValueError(f"round {index}: target probabilities must be non-negative and sum to 1")
    return arrays


def _effective_sample_size(weights: Vector) -> float:
    total = float(np.sum(weights**2))
    return float(np.sum(weights)) ** 2 / total if total > 0.0 else 0.0


def _normal_interval(
    name: str, value: float, std_error: float, *, confidence: float, n: int, weights: Vector
) -> Estimate:
    half = _z(confidence) * std_error
    return Estimate(
        estimator=name,
        value=value,
        lower=value - half,
        upper=value + half,
        std_error=std_error,
        confidence=confidence,
        n=n,
        effective_sample_size=_effective_sample_size(weights),
    )


def _mean_of_terms(name: str, terms: Vector, *, confidence: float, weights: Vector) -> Estimate:
    n = terms.size
    return _normal_interval(
        name,
        float(terms.mean()),
        float(terms.std(ddof=1)) / math.sqrt(n),
        confidence=confidence,
        n=n,
        weights=weights,
    )


def sample_mean(values: npt.ArrayLike, *, confidence: float = 0.95, name: str = "mean") -> Estimate:
    """Return the mean of observed values with a normal interval, e.g. a policy's on-policy average reward."""
    _check_settings(None, confidence)
    terms = np.asarray(values, dtype=np.float64).ravel()
    if terms.size < MIN_ROUNDS:
        raise ValueError(f"a mean with an interval needs at least {MIN_ROUNDS} values, got {terms.size}")
    return _mean_of_terms(name, terms, confidence=confidence, weights=np.ones(terms.size))


@dataclass(frozen=True, kw_only=True)
class IPS:
    """Inverse propensity scoring (obp's IPW): the mean of w_i r_i; unbiased when propensities are exact.

    Interval: value +- z * s / sqrt(n), with s the sample standard deviation
    of the per-round terms w_i r_i (central limit theorem). `clip` caps each
    weight, trading a downward bias for less variance.
    """

    name: ClassVar[str] = "ips"
    clip: float | None = None
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check_settings(self.clip, self.confidence)

    def estimate(self, logs: Sequence[LoggedRound], target: TargetProbabilities) -> Estimate:
        """Estimate the target policy's average reward from `logs`."""
        columns = _Columns.of(logs, target)
        weights = columns.weights(self.clip)
        return _mean_of_terms(self.name, weights * columns.rewards, confidence=self.confidence, weights=weights)


@dataclass(frozen=True, kw_only=True)
class SNIPS:
    """Self-normalized IPS (obp's SNIPW): sum w_i r_i / sum w_i; slightly biased, far less variance.

    Interval by the delta method: the estimator's linearization has terms
    w_i (r_i - V) / mean(w), so value +- z * s / sqrt(n) with s their sample
    standard deviation. Undefined (ValueError) when every weight is zero.
    """

    name: ClassVar[str] = "snips"
    clip: float | None = None
    confidence: float = 0.95

    def __post_init__(self) -> None:
        _check_settings(self.clip, self.confidence)

    def estimate(self, logs: Sequence[LoggedRound], target: TargetProbabilities) -> Estimate:
        """Estimate the target policy's average reward from `logs`."""
        columns = _Columns.of(logs, target)
        weights = columns.weights(self.clip)
        mean_weight = float(weights.mean())
        if mean_weight <= 0.0:
            raise ValueError("the target policy gives zero probability to every logged action; SNIPS is undefined")
        value = float(np.sum(weights * columns.rewards) / np.sum(weights))
        influence = weights * (columns.rewards - value) / mean_weight
        n = influence.size
        std_error = float(np.sqrt(np.sum(influence**2) / (n - 1))) / math.sqrt(n)
        return _normal_interval(self.name, value, std_error, confidence=self.confidence, n=n, weights=weights)


@dataclass(frozen=True, kw_only=True)
class DR:
    """Doubly robust (obp's DR): a reward model's value of the target, corrected by IPS on its residuals.

    Unbiased when either the propensities or the reward model are right, and
    with less variance than IPS when the model is good. Without given
    `predictions`, the reward model is a ridge regression (`RidgeModel`,
    penalty `ridge`) on the candidates' feature vectors, cross-fitted: the
    rounds are split into `folds` folds by a permutation seeded with `seed`,
    and each fold is predicted by a model fit on the other folds only, so no
    round's own reward leaks into its correction term. Interval: value +-
    z * s / sqrt(n) on the per-round terms, as for IPS.
    """

    name: ClassVar[str] = "dr"
    clip: float | None = None
    confidence: float = 0.95
    ridge: float = 1.0
    folds: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        _check_settings(self.clip, self.confidence)
        if not (math.isfinite(self.ridge) and self.ridge > 0.0):
            raise ValueError(f"ridge must be a positive finite penalty, got {self.ridge}")
        if self.folds < 2:
            raise ValueError(f"cross-fitting needs at least 2 folds, got {self.folds}")

    def estimate(
        self,
        logs: Sequence[LoggedRound],
        target: TargetProbabilities,
        *,
        predictions: Sequence[npt.ArrayLike] | None = None,
    ) -> Estimate:
        """Estimate the target policy's average reward; given `predictions` (per round, per candidate) skip the fit."""
        columns = _Columns.of(logs, target)
        if predictions is None:
            predicted = cross_fitted_rewards(logs, ridge=self.ridge, folds=self.folds, seed=self.seed)
        else:
            predicted = _checked_predictions(logs, predictions)
        weights = columns.weights(self.clip)
        direct = np.array([float(pi @ q) for pi, q in zip(columns.target, predicted, strict=True)])
        of_action = np.array([q[row.action] for row, q in zip(logs, predicted, strict=True)])
        terms = direct + weights * (columns.rewards - of_action)
        return _mean_of_terms(self.name, terms, confidence=self.confidence, weights=weights)


def _checked_predictions(logs: Sequence[LoggedRound], predictions: Sequence[npt.ArrayLike]) -> list[Vector]:
    if len(predictions) != len(logs):
        raise ValueError(f"got {len(logs)} logged rounds but {len(predictions)} reward predictions")
    out: list[Vector] = []
    for index, (row, values) in enumerate(zip(logs, predictions, strict=True)):
        q = np.asarray(values, dtype=np.float64)
        if q.shape != (row.k,) or not np.all(np.isfinite(q)):
            raise ValueError(f"round {index}: predictions must be {row.k} finite rewards, one per candidate")
        out.append(q)
    return out


def cross_fitted_rewards(
    logs: Sequence[LoggedRound], *, ridge: float = 1.0, folds: int = 2, seed: int = 0
) -> list[Vector]:
    """Predict every candidate's reward in every round by ridge models fit on the other folds only."""
    n = len(logs)
    if folds < 2 or n < folds:
        raise ValueError(f"cross-fitting {n} rounds needs 2 <= folds <= rounds, got {folds} folds")
    dims = {row.candidates.shape[1] for row in logs}
    if len(dims) != 1 or 0 in dims:
        raise ValueError("the reward model needs feature vectors of one positive dimension in every round")
    dim = dims.pop()
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    predictions: list[Vector] = [np.zeros(0)] * n
    for fold in range(folds):
        model = RidgeModel(dim, ridge)
        for i in np.flatnonzero(fold_of != fold).tolist():
            row = logs[i]
            model.update(row.candidates[row.action], row.reward)
        held_out = np.flatnonzero(fold_of == fold).tolist()
        # One matrix product for the whole fold, split back into rounds.
        stacked = model.mean(np.vstack([logs[i].candidates for i in held_out]))
        ends = np.cumsum([logs[i].k for i in held_out])[:-1]
        for i, values in zip(held_out, np.split(stacked, ends), strict=True):
            predictions[i] = values
    return predictions
