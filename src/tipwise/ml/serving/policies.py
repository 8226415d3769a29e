"""Contextual-bandit policies: a frozen, validated spec plus learned state.

Every policy returns the probability of every candidate, so the logged
propensity of the chosen action is exact and off-policy evaluation can
compare any two policies on the same log. Randomness comes only from the
`numpy.random.Generator` passed in: the same state, inputs and seed give the
same decision.

The linear policies (epsilon-greedy, LinUCB, linear Thompson sampling,
inverse-gap weighting) share one exact ridge model over the candidate
vectors of a `FeatureSpec`. Those vectors are `[shared, action,
action_cross (x) shared]`, and every candidate switches on a single crossed
block (one category, one action id), so the model keeps its Gram matrix
and its inverse in blocks (`FactoredRidge`); its answers equal those of the
plain `RidgeModel` on the same (grid-rounded) vectors at a fraction of the
cost, and its state does not depend on how the examples were batched. By default the
shared block is left out of the model (`shared_weights=False`, see
`FeatureLayout`). Without exploration every linear policy is greedy on the
ridge estimate.

The defaults (ridge 5, no shared weights, floor 0.01, and each policy's own
knob) were chosen once, for every stream, from a small grid on
`tipwise bench learn`; docs/benchmarks.md has the measurements.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
from numpy.typing import NDArray

from tipwise.ml.serving.features import CandidateSet, FeatureSpec, Indices, Matrix, Vector

Features = Mapping[str, float]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The outcome of one pick."""

    index: int
    probabilities: tuple[float, ...]
    confidence: float
    explored: bool

    @property
    def propensity(self) -> float:
        return self.probabilities[self.index]


@dataclass(frozen=True, kw_only=True)
class LoggedReward:
    """One learning example: what was shown in which context, with what probability, and how it went."""

    shared: Features
    action: Features
    propensity: float
    reward: float


class Policy(Protocol):
    kind: ClassVar[str]

    @property
    def version(self) -> int:
        """Number of rewards learned so far; stored with every decision as the model version."""
        ...

    def pick(
        self, *, context: Features, candidates: Sequence[Features], rng: np.random.Generator, explore: bool = True
    ) -> Decision: ...

    def learn(self, batch: Sequence[LoggedReward]) -> None: ...

    def spec_dict(self) -> dict[str, Any]: ...

    def state_bytes(self) -> bytes: ...

    def load_state(self, data: bytes) -> None: ...


def require_candidates(candidates: Sequence[Features]) -> None:
    """Raise ValueError when there is nothing to pick from."""
    if not candidates:
        raise ValueError("pick needs at least one candidate")


def mix_with_uniform(probabilities: Vector, floor_mass: float) -> Vector:
    """Spread `floor_mass` evenly over all candidates, so none drops below floor_mass / k."""
    k = probabilities.size
    mixed: Vector = (1.0 - floor_mass) * probabilities + floor_mass / k
    return mixed


def argmax_share(scores: Vector) -> Vector:
    """Split probability 1 evenly over the top-scoring candidates."""
    best = (scores >= scores.max() - 1e-12).astype(np.float64)
    share: Vector = best / best.sum()
    return share


def argmax_with_floor(scores: Vector, floor_mass: float) -> Vector:
    """Return `mix_with_uniform(argmax_share(scores), floor_mass)` in fewer steps (equal up to rounding)."""
    best = scores >= scores[scores.argmax()] - 1e-12  # the max, without the Python wrapper of ndarray.max
    probabilities: Vector = best * ((1.0 - floor_mass) / np.count_nonzero(best))
    probabilities += floor_mass / scores.size
    return probabilities


def sample_index(probabilities: Vector, rng: np.random.Generator) -> int:
    """Draw a candidate index from `probabilities` with one uniform draw from `rng`."""
    # Inverse-CDF sampling with one uniform draw keeps replays exact and cheap.
    cumulative = probabilities.cumsum()
    return int(min(cumulative.searchsorted(rng.random() * cumulative[-1], side="right"), probabilities.size - 1))


def _check_ridge(ridge: float) -> None:
    if not ridge > 0:
        raise ValueError("ridge must be > 0")


def _check_floor(floor: float) -> None:
    if not 0.0 <= floor < 1.0:
        raise ValueError("floor must be within [0, 1)")


# -- specs ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UniformSpec:
    """Every candidate equally likely; the baseline every learner must beat."""

    kind: Literal["uniform"] = "uniform"


@dataclass(frozen=True, kw_only=True)
class EpsilonGreedySpec:
    """Greedy on a ridge estimate, uniform with probability `epsilon`.

    `ridge` is the penalty of the ridge model; `shared_weights` also fits
    weights on the shared features alone (see `FeatureLayout`).
    """

    kind: Literal["epsilon_greedy"] = "epsilon_greedy"
    epsilon: float = 0.05
    ridge: float = 5.0
    shared_weights: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        _check_ridge(self.ridge)


@dataclass(frozen=True, kw_only=True)
class LinUCBSpec:
    """LinUCB with one shared ridge model over context x action features.

    Picks the highest `mean + alpha * width`. `floor` spreads that much
    probability mass uniformly over all candidates, so no candidate's
    propensity drops below floor/k and the logs stay usable for off-policy
    evaluation. `ridge` and `shared_weights` as for `EpsilonGreedySpec`.
    """

    kind: Literal["linucb"] = "linucb"
    alpha: float = 0.2
    ridge: float = 5.0
    shared_weights: bool = False
    floor: float = 0.01

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        _check_ridge(self.ridge)
        _check_floor(self.floor)


@dataclass(frozen=True, kw_only=True)
class LinearTSSpec:
    """Linear Thompson sampling: draw theta ~ N(theta_hat, scale^2 A^-1) and pick its best candidate.

    The probability of each candidate being the sampled best has no closed
    form, so it is estimated from `draws` Monte Carlo draws of the candidate
    scores (from the same seeded generator), mixed with a uniform `floor`;
    the pick is then drawn from exactly that vector, so the logged propensity
    is the one the action was drawn with. Picking one of the draws uniformly
    and taking its best is Thompson sampling itself, so `draws` only sets how
    finely the propensities are resolved (in steps of 1/draws); a pick costs
    k * draws normal variates. `ridge` and `shared_weights` as for
    `EpsilonGreedySpec`.
    """

    kind: Literal["linear_ts"] = "linear_ts"
    scale: float = 0.07
    ridge: float = 5.0
    shared_weights: bool = False
    floor: float = 0.01
    draws: int = 256

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise ValueError("scale must be >= 0")
        _check_ridge(self.ridge)
        _check_floor(self.floor)
        if self.draws < 1:
            raise ValueError("draws must be >= 1")


@dataclass(frozen=True, kw_only=True)
class RidgeIGWSpec:
    """Inverse-gap weighting (SquareCB) over the exact online ridge model.

    Scores are `mean + alpha * width`; a candidate whose score trails the
    best by `gap` gets probability 1 / (k + gamma * gap), the best ones share
    the rest, and a uniform `floor` is mixed in. A larger `gamma` exploits
    harder; `alpha` > 0 adds optimism for candidates the model knows little.
    Unlike LinUCB's, its probabilities fall off smoothly with the gap, which
    suits off-policy evaluation. `ridge` and `shared_weights` as for
    `EpsilonGreedySpec`.
    """

    kind: Literal["ridge_igw"] = "ridge_igw"
    gamma: float = 3000.0
    alpha: float = 0.1
    ridge: float = 5.0
    shared_weights: bool = False
    floor: float = 0.01

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError("gamma must be >= 0")
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        _check_ridge(self.ridge)
        _check_floor(self.floor)


@dataclass(frozen=True, kw_only=True)
class VWCbAdfSpec:
    """Vowpal Wabbit `--cb_explore_adf` (`-q sa --cb_type mtr`); served by `tipwise.ml.serving.vw`.

    `exploration` is VW's own: `epsilon` (with `epsilon`) or `squarecb`;
    `learning_rate` is VW's `-l`, `seed` its `--random_seed`, and `floor`
    mixes that much uniform mass into VW's probabilities.
    """

    kind: Literal["vw_cb_adf"] = "vw_cb_adf"
    exploration: Literal["epsilon", "squarecb"] = "squarecb"
    epsilon: float = 0.05
    learning_rate: float = 2.0
    seed: int = 0
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.exploration not in ("epsilon", "squarecb"):
            raise ValueError("exploration must be 'epsilon' or 'squarecb'")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        if not self.learning_rate > 0:
            raise ValueError("learning_rate must be > 0")
        _check_floor(self.floor)


# -- the uniform baseline -------------------------------------------------------


class UniformPolicy:
    kind: ClassVar[str] = "uniform"

    def __init__(self, spec: UniformSpec | None = None) -> None:
        self.spec = spec or UniformSpec()
        self._version = 0

    @property
    def version(self) -> int:
        return self._version

    def pick(
        self, *, context: Features, candidates: Sequence[Features], rng: np.random.Generator, explore: bool = True
    ) -> Decision:
        require_candidates(candidates)
        k = len(candidates)
        probabilities = np.full(k, 1.0 / k)
        return Decision(
            index=sample_index(probabilities, rng),
            probabilities=tuple(probabilities.tolist()),  # Python floats, as the linear policies give
            confidence=0.0,
            explored=True,
        )

    def learn(self, batch: Sequence[LoggedReward]) -> None:
        self._version += len(batch)

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)

    def state_bytes(self) -> bytes:
        return json.dumps({"version": self._version}).encode()

    def load_state(self, data: bytes) -> None:
        self._version = int(json.loads(data)["version"])


# -- ridge models ---------------------------------------------------------------


class RidgeModel:
    """Online ridge regression on dense vectors, keeping the inverse Gram matrix by Sherman-Morrison updates."""

    def __init__(self, dim: int, ridge: float) -> None:
        self.a_inv = np.eye(dim) / ridge
        self.b = np.zeros(dim)
        self.theta = np.zeros(dim)
        self.n = 0

    def update(self, x: Vector, reward: float) -> None:
        a_inv_x = self.a_inv @ x
        self.a_inv -= np.outer(a_inv_x, a_inv_x) / (1.0 + x @ a_inv_x)
        self.b += reward * x
        self.theta = self.a_inv @ self.b
        self.n += 1

    def mean(self, features: Matrix) -> Vector:
        result: Vector = features @ self.theta
        return result

    def covariance(self, features: Matrix) -> Matrix:
        """Return X A^-1 X': the posterior covariance of the rows' scores, up to the noise scale."""
        result: Matrix = features @ self.a_inv @ features.T
        return result

    def width(self, features: Matrix) -> Vector:
        """Return sqrt(x' A^-1 x) per row: how unsure the model is about each candidate."""
        result: Vector = np.sqrt(np.maximum(((features @ self.a_inv) * features).sum(axis=1), 0.0))
        return result

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, a_inv=self.a_inv, b=self.b, n=np.array(self.n))
        return buffer.getvalue()

    def load(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as arrays:
            self.load_arrays(arrays)

    def load_arrays(self, arrays: Mapping[str, Any]) -> None:
        if arrays["b"].shape != self.b.shape:
            raise ValueError(f"model state has dimension {arrays['b'].shape[0]}, expected {self.b.shape[0]}")
        self.a_inv = np.array(arrays["a_inv"], dtype=np.float64)
        self.b = np.array(arrays["b"], dtype=np.float64)
        self.n = int(arrays["n"])
        self.theta = self.a_inv @ self.b


@dataclass(frozen=True, slots=True)
class CandidateRows:
    """The candidate vectors of one decision in factored form.

    Row k of the full matrix is `[border[k], cross[k] (x) shared]`: `border`
    holds the (scaled) shared and action blocks, `cross` the (scaled)
    `action_cross` values that multiply the shared vector.
    """

    shared: Vector
    border: Matrix
    cross: Matrix

    def dense(self) -> Matrix:
        """Return the full rows, as `FeatureSpec.matrix` lays them out."""
        k = self.border.shape[0]
        crossed = (self.cross[:, :, None] * self.shared[None, None, :]).reshape(
            k, self.cross.shape[1] * self.shared.size
        )
        out: Matrix = np.hstack([self.border, crossed])
        return out

    def select(self, index: int) -> CandidateRows:
        """Return the rows of candidate `index` alone."""
        return CandidateRows(
            shared=self.shared, border=self.border[index : index + 1], cross=self.cross[index : index + 1]
        )


class FeatureLayout:
    """Turns named features into candidate rows for one `FeatureSpec`, without forming the crossed block.

    The rows are `FeatureSpec.matrix`'s (tested). Without `shared_weights` the
    shared block is left out (the scaling still counts it): it adds the same
    amount to every candidate of a decision, so it never changes a ranking,
    and fitting it only lets one candidate's failure lower the others'
    estimates too.

    A pick goes through `decision`: the candidates as a `CandidateSet`
    (featurized once, or handed over already prepared) and the shared vector,
    in the compact form `DecisionRows` that the policies score; the live
    policy and its shadows share one of each per decision.
    """

    def __init__(self, features: FeatureSpec, *, shared_weights: bool = True) -> None:
        self.features = features
        self.shared_weights = shared_weights
        self.shared_dim = features.shared_width
        self.border_dim = features.action_width + (features.shared_width if shared_weights else 0)
        self.blocks = len(features.action_cross)
        self._prepared: tuple[Sequence[Features], CandidateSet] | None = None
        self._learn_memo: tuple[Sequence[LoggedReward], LearnRows] | None = None

    def shared_vector(self, shared: Features) -> Vector:
        return self.features.shared_vector(shared)

    def action_matrix(self, actions: Sequence[Features]) -> Matrix:
        return self.features.action_matrix(actions)

    def prepare(self, actions: Sequence[Features]) -> CandidateSet:
        """Return `actions` as a `CandidateSet` of this layout's spec, featurizing them only if needed.

        A one-entry memo keyed by the identity of the sequence (and holding
        it) lets the live policy and its shadows featurize a plain list once;
        callers must not mutate a candidate list after handing it over.
        """
        if isinstance(actions, CandidateSet) and (actions.spec is self.features or actions.spec == self.features):
            return actions
        memo = self._prepared
        if memo is not None and memo[0] is actions:
            return memo[1]
        prepared = CandidateSet(self.features, actions)
        self._prepared = (actions, prepared)
        return prepared

    def decision(self, shared: Features, actions: Sequence[Features]) -> DecisionRows:
        """Return the rows of one decision, shared by every policy of this layout (memo on the candidate set)."""
        prepared = self.prepare(actions)
        remembered = prepared.memo(self, shared)
        if isinstance(remembered, DecisionRows):
            return remembered
        rows = self._decision(shared, prepared)
        prepared.remember(self, shared, rows)
        return rows

    def _decision(self, shared: Features, prepared: CandidateSet) -> DecisionRows:
        s = self.features.shared_vector(shared)
        if self.shared_weights:
            used = np.flatnonzero(s)
            columns = np.concatenate([used, self.features.shared_width + prepared.columns])
            z = np.hstack([np.broadcast_to(s[used], (len(prepared), used.size)), prepared.z])
        else:
            columns, z = prepared.columns, prepared.z
        scale = None
        if self.features.normalize:
            # |row|^2 = |a|^2 + (1 + |cross|^2) |s|^2, without forming the row; an all-zero row stays zero.
            s2 = float(s @ s)
            scale = prepared.cross_sq1 * s2
            scale += prepared.action_sq
            if not s2 >= _TINY:  # (1 + |cross|^2) |s|^2 >= |s|^2 otherwise keeps every entry >= _TINY already
                np.maximum(scale, _TINY, out=scale)
            np.sqrt(scale, out=scale)
            np.divide(1.0, scale, out=scale)
        return DecisionRows(layout=self, shared=s, columns=columns, z=z, scale=scale)

    def rows(self, shared: Features, actions: Sequence[Features]) -> CandidateRows:
        """Return the full candidate rows of one decision (the factored form `FactoredRidge` reads)."""
        return self.decision(shared, actions).candidate_rows()

    def learn_rows(self, batch: Sequence[LoggedReward]) -> LearnRows:
        """Return the rows of every example's chosen action, built at once; policies learning one batch share them.

        A one-entry memo keyed by the batch's identity (and holding it), like `prepare`.
        """
        memo = self._learn_memo
        if memo is not None and memo[0] is batch:
            return memo[1]
        shared = self.features.shared_matrix([example.shared for example in batch])
        actions = self.features.action_matrix([example.action for example in batch])
        cross = actions[:, self.features.cross_columns]
        border = np.hstack([shared, actions]) if self.shared_weights else actions
        if self.features.normalize:
            # |row|^2 = |s|^2 + |a|^2 + |cross|^2 |s|^2, without forming the rows.
            s2 = (shared * shared).sum(axis=1)
            norms = np.sqrt(s2 + (actions * actions).sum(axis=1) + (cross * cross).sum(axis=1) * s2)
            scale = (1.0 / np.where(norms > 0.0, norms, 1.0))[:, None]
            border = border * scale
            cross = cross * scale
        rows = LearnRows(
            shared=shared, border=border, cross=cross, reward=np.array([example.reward for example in batch])
        )
        self._learn_memo = (batch, rows)
        return rows

    def _rows(self, shared: Features, actions: Sequence[Features]) -> CandidateRows:
        s = self.shared_vector(shared)
        a = self.action_matrix(actions)
        cross = a[:, self.features.cross_columns]
        border = np.hstack([np.broadcast_to(s, (a.shape[0], s.size)), a]) if self.shared_weights else a
        if self.features.normalize:
            # |row|^2 = |s|^2 + |a|^2 + |cross|^2 |s|^2, without forming the row.
            s2 = float(s @ s)
            norms = np.sqrt(s2 + (a * a).sum(axis=1) + (cross * cross).sum(axis=1) * s2)
            scale = 1.0 / np.where(norms > 0.0, norms, 1.0)
            border = border * scale[:, None]
            cross = cross * scale[:, None]
        return CandidateRows(shared=s, border=border, cross=cross)


_TINY = 1e-300


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRows:
    """The candidate vectors of one decision, compact: only the border columns some candidate uses.

    Row k of `CandidateRows.border` is `scale[k] * z[k, :m]` on `columns`
    (m of them) and zero elsewhere; its crossed coefficients are
    `scale[k] * z[k, m:]`. A hashed namespace is wide and a candidate uses a
    few of its positions, so scoring on `z` costs a fraction of the full rows.
    """

    layout: FeatureLayout
    shared: Vector
    columns: Indices
    z: Matrix
    scale: Vector | None
    _full: list[CandidateRows] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def candidate_rows(self) -> CandidateRows:
        """Return the full rows (made once): what `FactoredRidge` and the dense model read."""
        if self._full:
            return self._full[0]
        m = self.columns.size
        border = np.zeros((len(self), self.layout.border_dim))
        border[:, self.columns] = self.z[:, :m]
        cross = np.array(self.z[:, m:])
        if self.scale is not None:
            border *= self.scale[:, None]
            cross *= self.scale[:, None]
        rows = CandidateRows(shared=self.shared, border=border, cross=cross)
        self._full.append(rows)
        return rows


@functools.cache
def layout_for(features: FeatureSpec, *, shared_weights: bool) -> FeatureLayout:
    """Return the one layout of `features` (policies with the same features share it, and its memo)."""
    return FeatureLayout(features, shared_weights=shared_weights)


# The grid of the exact statistics: every feature value and reward is rounded to a multiple of
# 2^-GRID_BITS before it is learned (an error below 8e-6, far under any feature's own noise).
GRID_BITS = 16
_TO_GRID = float(2**GRID_BITS)
# Products of two grid values are integers in units of 2^-(2 GRID_BITS).
_FROM_PRODUCTS = float(2.0 ** (-2 * GRID_BITS))
# A float64 holds every integer below 2^53 exactly, so a matrix product of grid integers whose
# absolute partial sums stay below it is exact in any summation order.
_EXACT_FLOAT = 2**53
# The int64 sums keep a factor of two of headroom below 2^63.
_EXACT_INT = 2**62
# Rows learned one by one wait at most this many for their Gram products (see `FactoredRidge._flush`).
_QUEUE_LIMIT = 256


@dataclass(frozen=True, slots=True)
class LearnRows:
    """The chosen rows of a batch of examples, in factored form, with their rewards.

    Row i of the full matrix is `[border[i], cross[i] (x) shared[i]]`, as in
    `CandidateRows`, but every example has its own shared vector.
    """

    shared: Matrix
    border: Matrix
    cross: Matrix
    reward: Vector

    @classmethod
    def of(cls, rows: CandidateRows, reward: float) -> LearnRows:
        """Return the single row of `rows` with its reward."""
        return cls(shared=rows.shared[None, :], border=rows.border, cross=rows.cross, reward=np.array([reward]))

    def dense(self) -> Matrix:
        """Return the full rows, as `FeatureSpec.matrix` lays them out."""
        n = self.border.shape[0]
        crossed = (self.cross[:, :, None] * self.shared[:, None, :]).reshape(n, -1)
        out: Matrix = np.hstack([self.border, crossed])
        return out


def _on_grid(values: Matrix) -> Matrix:
    grid: Matrix = np.rint(values * _TO_GRID)
    return grid


def _grid_products(left: Matrix, right: Matrix) -> NDArray[np.int64]:
    """Return `left.T @ right` exactly, for grid integers whose row products are bounded (see `_mass`)."""
    return np.asarray(left.T @ right).astype(np.int64)


def _row_mass(*grids: Matrix) -> NDArray[np.int64]:
    """Return, per row, the square of its largest grid value: a bound on every product the row adds."""
    peak = np.zeros(grids[0].shape[0])
    for grid in grids:
        if grid.shape[1]:
            peak = np.maximum(peak, np.abs(grid).max(axis=1))
    if peak.size and peak.max() >= 2**26:
        raise ValueError(f"a feature value or reward of magnitude {peak.max() / _TO_GRID:g} is too large to learn")
    mass: NDArray[np.int64] = peak.astype(np.int64) ** 2
    return mass


def _exact_chunks(mass: NDArray[np.int64]) -> list[slice]:
    """Split rows so that each chunk's products sum exactly in float64."""
    chunks: list[slice] = []
    start, total = 0, 0
    for i, m in enumerate(mass.tolist()):
        if total + m >= _EXACT_FLOAT:
            chunks.append(slice(start, i))
            start, total = i, 0
        total += m
    chunks.append(slice(start, mass.size))
    return chunks


class FactoredRidge:
    """Exact ridge regression over a `FeatureLayout`'s vectors, from order-free integer statistics.

    The learned state is the Gram matrix A = sum x x' and b = sum reward x of
    every example learned so far, with every feature value and reward first
    rounded to a multiple of 2^-GRID_BITS, so the sums are integers (int64)
    and come out the same bits whatever the order and the batching of the
    examples. A batch is learned with a few matrix products over all its
    rows. The live learner (batches cut by timing) and a replay of the log
    (one batch) therefore hold the same state by construction.

    While every learned row switches on at most one crossed block, A is an
    arrowhead: a border block (shared + action features), one diagonal block
    D_j per `action_cross` feature, and couplings C_j between them; only
    those are kept. The answers need A^-1 (with the ridge penalty on the
    diagonal), kept in factored form: the inverse Schur complement
    S^-1 = (A_border - sum_j C_j D_j^-1 C_j')^-1, the blocks D_j^-1 and
    E_j = C_j D_j^-1. After a batch only the touched blocks' D_j^-1 and E_j
    are recomputed, then S^-1; each is a fixed function of the statistics,
    so a model loaded from its bytes answers bit for bit like the one that
    learned, and like every other copy (served models are always such
    copies). A batch of one example (a pick-then-learn loop) updates the
    factors by Sherman-Morrison instead, O(d^2) instead of O(d^3): the same
    answers up to rounding until the next larger batch or load derives them
    again (`derived_exactly`); the statistics are exact either way. A row
    that switches on two crossed blocks at once couples them; the model then
    keeps the full Gram matrix for good, with the same answers, and inverts
    it when next asked.

    Bounds: a row adds at most m^2 to any sum, m its largest value on the
    grid (|value| * 2^GRID_BITS); the sums are checked to stay below 2^62,
    and a batch's products are cut into chunks whose sums stay below 2^53,
    where float64 is exact. With unit-length rows (`normalize`) that allows
    2^30 examples; a value of magnitude 2^10 or more is refused.
    """

    def __init__(self, layout: FeatureLayout, ridge: float) -> None:
        self.ridge = ridge
        self._shared_dim = layout.shared_dim
        self._border_dim = layout.border_dim
        self._blocks = layout.blocks
        ds, db, c = self._shared_dim, self._border_dim, self._blocks
        self.n = 0
        # True when the state was converted from a format before the exact statistics (up to rounding).
        self.migrated = False
        # Upper bound of every accumulated sum (grid units); a Python int, exact in any order.
        self._mass = 0
        self._g_border = np.zeros((db, db), dtype=np.int64)
        self._g_cross = np.zeros((c, db, ds), dtype=np.int64)
        self._g_blocks = np.zeros((c, ds, ds), dtype=np.int64)
        self._r_border = np.zeros(db, dtype=np.int64)
        self._r_blocks = np.zeros((c, ds), dtype=np.int64)
        self._g_dense: NDArray[np.int64] | None = None
        self._r_dense: NDArray[np.int64] | None = None
        self._dense_cache: RidgeModel | None = None  # derived from the dense statistics when first asked for
        # Derived from the statistics: the factored inverse, and E_j C_j' per block for S.
        self._schur_inv = np.eye(db) / ridge
        # [E_1 ... E_c] side by side: one matrix product serves every block at once.
        self._e = np.zeros((db, c * ds))
        self._block_inv = np.repeat((np.eye(ds) / ridge)[None], c, axis=0)
        self._coupled = np.zeros((c, db, db))
        self._ridge_shared = np.eye(ds) * ridge
        # Blocks (-1: the border alone) whose inverse factors were updated one example at a time.
        self._approximate: set[int] = set()
        # Grid rows learned one by one whose Gram products are not added yet: (border, block, j, mass).
        self._queue: list[tuple[Vector, Vector, int, int]] = []
        self._ridge_border = np.eye(db) * ridge
        self._derive(range(c))
        self._theta_border = np.zeros(db)
        self._theta_blocks = np.zeros((c, ds))
        self._stale = True

    @property
    def dim(self) -> int:
        return self._border_dim + self._blocks * self._shared_dim

    @property
    def is_dense(self) -> bool:
        return self._g_dense is not None

    # -- learning -------------------------------------------------------------

    def update(self, rows: CandidateRows, reward: float) -> None:
        """Learn `reward` for the single row in `rows`."""
        self.learn(LearnRows.of(rows, reward))

    def learn(self, rows: LearnRows) -> None:
        """Learn every row of `rows` with its reward; the result does not depend on how examples are batched."""
        n = rows.border.shape[0]
        if n == 0:
            return
        active = rows.cross != 0.0
        counts = active.sum(axis=1)
        q_reward = _on_grid(rows.reward)[:, None]
        q_border = _on_grid(rows.border)
        if n == 1 and self._g_dense is None and counts[0] <= 1:
            self._learn_one(q_border[0], float(q_reward[0, 0]), np.flatnonzero(active[0]), rows)
            return
        self._flush()
        if self._g_dense is None and bool((counts > 1).any()):
            self._to_dense()
        if self._g_dense is not None:
            q_rows = np.hstack([q_border, _on_grid(rows.dense()[:, self._border_dim :])])
            for chunk in self._add_mass(_row_mass(q_rows, q_reward)):
                y = np.hstack([q_rows[chunk], q_reward[chunk]])
                products = _grid_products(q_rows[chunk], y)
                self._g_dense += products[:, :-1]
                self._r_dense += products[:, -1]  # type: ignore[operator]
            self.n += n
            self._derive_dense()
            return
        if self._blocks:
            which = np.where(active.any(axis=1), active.argmax(axis=1), -1)
            # The crossed values of each row's one active block: cross_j * shared, on the grid.
            picked = rows.cross[np.arange(n), np.maximum(which, 0)] * (which >= 0)
            q_block = _on_grid(picked[:, None] * rows.shared)
        else:
            which = np.full(n, -1)
            q_block = np.zeros((n, self._shared_dim))
        chunks = self._add_mass(_row_mass(q_border, q_block, q_reward))
        touched = self._accumulate(q_border, q_block, which, q_reward, chunks)
        self.n += n
        self._derive(touched)

    def _accumulate(
        self, q_border: Matrix, q_block: Matrix, which: NDArray[np.intp], q_reward: Matrix, chunks: list[slice]
    ) -> list[int]:
        """Add the products of grid rows to the statistics; return the blocks they touched."""
        y = np.hstack([q_border, q_reward])
        touched: list[int] = np.unique(which[which >= 0]).tolist()
        for chunk in chunks:
            products = _grid_products(q_border[chunk], y[chunk])
            self._g_border += products[:, :-1]
            self._r_border += products[:, -1]
            for j in touched:
                mine = which[chunk] == j
                if not mine.any():
                    continue
                q_j = q_block[chunk][mine]
                products = _grid_products(q_j, np.hstack([q_j, y[chunk][mine]]))
                ds = self._shared_dim
                self._g_blocks[j] += products[:, :ds]
                self._g_cross[j] += products[:, ds:-1].T
                self._r_blocks[j] += products[:, -1]
        return touched

    def _flush(self) -> None:
        """Add the Gram products of the examples learned one by one (their reward sums are in already)."""
        if not self._queue:
            return
        queue, self._queue = self._queue, []
        mass = np.array([item[3] for item in queue], dtype=np.int64)
        chunks = _exact_chunks(mass) if int(mass.sum()) >= _EXACT_FLOAT else [slice(None)]
        self._accumulate(
            np.array([item[0] for item in queue]),
            np.array([item[1] for item in queue]).reshape(len(queue), self._shared_dim),
            np.array([item[2] for item in queue], dtype=np.intp),
            np.zeros((len(queue), 1)),
            chunks,
        )

    def _learn_one(self, q_border: Vector, q_reward: float, active: NDArray[np.intp], rows: LearnRows) -> None:
        """Learn a single row with outer products: the same integers as `learn`'s matrix products, in fewer steps."""
        peak = max(float(np.abs(q_border).max(initial=0.0)), abs(q_reward))
        q_block: Vector | None = None
        if active.size:
            j = int(active[0])
            q_block = _on_grid(rows.cross[0, j] * rows.shared[0])
            peak = max(peak, float(np.abs(q_block).max(initial=0.0)))
        mass = _row_mass(np.array([[peak]]))
        self._add_mass(mass)
        # The reward sums now (the coefficients need them); the Gram products are queued and added
        # with a matrix product when a derivation or the state needs them: the same integers.
        self._r_border += (q_border * q_reward).astype(np.int64)
        if q_block is not None:
            self._r_blocks[j] += (q_block * q_reward).astype(np.int64)
        self._queue.append(
            (
                q_border,
                q_block if q_block is not None else np.zeros(self._shared_dim),
                j if q_block is not None else -1,
                int(mass[0]),
            )
        )
        if len(self._queue) >= _QUEUE_LIMIT:
            self._flush()
        self.n += 1
        # A Sherman-Morrison update of the factored inverse instead of a new derivation: O(d^2) instead
        # of O(d^3), so a pick-then-learn loop stays fast. It agrees with the derivation up to rounding;
        # the next batch, or a load, derives every block it touched from the statistics again.
        x_border = q_border / _TO_GRID
        if q_block is None:
            g = self._schur_inv @ x_border
            self._schur_inv -= g[:, None] * (g / (1.0 + x_border @ g))
            self._approximate.add(-1)
        else:
            ds = self._shared_dim
            block = slice(j * ds, (j + 1) * ds)
            x_block = q_block / _TO_GRID
            u = self._block_inv[j] @ x_block
            beta = 1.0 + x_block @ u
            r = x_border - self._e[:, block] @ x_block
            g = self._schur_inv @ r
            self._schur_inv -= g[:, None] * (g / (beta + r @ g))
            self._e[:, block] += (r / beta)[:, None] * u
            self._block_inv[j] -= u[:, None] * (u / beta)
            self._approximate.add(j)
        self._stale = True

    def _add_mass(self, mass: NDArray[np.int64]) -> list[slice]:
        """Count a batch's mass against the int64 bound; return the chunks whose products are exact in float64."""
        batch = int(mass.sum())
        if self._mass + batch >= _EXACT_INT:
            raise OverflowError("the model's exact sums would overflow: too many examples for their feature scale")
        self._mass += batch
        return _exact_chunks(mass) if batch >= _EXACT_FLOAT else [slice(None)]

    @property
    def derived_exactly(self) -> bool:
        """Whether the answers come from the statistics alone (false after one-example updates until the next batch)."""
        return not self._approximate

    def _derive(self, blocks: Iterable[int]) -> None:
        """Recompute the factored inverse of `blocks` (and of any updated one by one) and S from the statistics."""
        ds = self._shared_dim
        eye_s = self._ridge_shared
        for j in sorted(set(blocks) | self._approximate - {-1}):
            block_inv = np.linalg.inv(self._g_blocks[j] * _FROM_PRODUCTS + eye_s)
            coupling = self._g_cross[j] * _FROM_PRODUCTS
            e_j = coupling @ block_inv
            self._block_inv[j] = block_inv
            self._e[:, j * ds : (j + 1) * ds] = e_j
            self._coupled[j] = e_j @ coupling.T
        schur = self._g_border * _FROM_PRODUCTS + self._ridge_border - self._coupled.sum(axis=0)
        self._schur_inv = np.linalg.inv(schur)
        self._approximate = set()
        self._stale = True

    def _to_dense(self) -> None:
        """Switch to the full Gram matrix, assembled exactly from the blocks."""
        self._flush()
        db, ds = self._border_dim, self._shared_dim
        gram = np.zeros((self.dim, self.dim), dtype=np.int64)
        gram[:db, :db] = self._g_border
        for j in range(self._blocks):
            block = slice(db + j * ds, db + (j + 1) * ds)
            gram[block, block] = self._g_blocks[j]
            gram[:db, block] = self._g_cross[j]
            gram[block, :db] = self._g_cross[j].T
        self._g_dense = gram
        self._r_dense = np.concatenate([self._r_border, self._r_blocks.ravel()])
        self._derive_dense()

    def _derive_dense(self) -> None:
        # The dense inverse costs O(dim^3): it is derived when next asked for, not after every batch.
        self._dense_cache = None

    @property
    def _dense(self) -> RidgeModel | None:
        # The dense model the answers come from, derived on first use (readers outside the class use this name).
        return self._dense_model()

    def _dense_model(self) -> RidgeModel | None:
        """Return the dense model the answers come from, once the model is dense (derived from the statistics)."""
        gram, r = self._g_dense, self._r_dense
        if gram is None or r is None:
            return None
        if self._dense_cache is not None:
            return self._dense_cache
        dense = RidgeModel(self.dim, self.ridge)
        dense.a_inv = np.linalg.inv(gram * _FROM_PRODUCTS + np.eye(self.dim) * self.ridge).astype(np.float64)
        dense.b = (r * _FROM_PRODUCTS).astype(np.float64)
        dense.theta = dense.a_inv @ dense.b
        dense.n = self.n
        self._dense_cache = dense
        return dense

    def _refresh(self) -> None:
        if not self._stale:
            return
        # theta_border = S^-1 (b_border - sum_j E_j b_j); theta_j = D_j^-1 b_j - E_j' theta_border.
        b_border = self._r_border * _FROM_PRODUCTS
        b_blocks = self._r_blocks * _FROM_PRODUCTS
        self._theta_border = self._schur_inv @ (b_border - self._e @ b_blocks.ravel())
        d_b = np.matmul(self._block_inv, b_blocks[:, :, None])[:, :, 0]
        self._theta_blocks = d_b - (self._theta_border @ self._e).reshape(self._blocks, self._shared_dim)
        self._stale = False

    # -- answering --------------------------------------------------------------

    def mean(self, rows: CandidateRows) -> Vector:
        """Return the predicted reward of every row."""
        dense = self._dense_model()
        if dense is not None:
            return dense.mean(rows.dense())
        self._refresh()
        result: Vector = rows.border @ self._theta_border + rows.cross @ (self._theta_blocks @ rows.shared)
        return result

    def _residuals(self, rows: CandidateRows) -> tuple[Matrix, Vector]:
        # x' A^-1 y = r_x' S^-1 r_y + sum_j cx_j cy_j s' D_j^-1 s, with r = border - sum_j c_j E_j s.
        s = rows.shared
        db, c, ds = self._border_dim, self._blocks, self._shared_dim
        e_s = (self._e.reshape(db * c, ds) @ s).reshape(db, c)
        r = rows.border - rows.cross @ e_s.T
        q = (self._block_inv.reshape(c * ds, ds) @ s).reshape(c, ds) @ s
        return r, q

    def covariance(self, rows: CandidateRows) -> Matrix:
        """Return X A^-1 X': the posterior covariance of the rows' scores, up to the noise scale."""
        dense = self._dense_model()
        if dense is not None:
            return dense.covariance(rows.dense())
        r, q = self._residuals(rows)
        result: Matrix = r @ self._schur_inv @ r.T + (rows.cross * q) @ rows.cross.T
        return result

    def width(self, rows: CandidateRows) -> Vector:
        """Return sqrt(x' A^-1 x) per row: how unsure the model is about each candidate."""
        dense = self._dense_model()
        if dense is not None:
            return dense.width(rows.dense())
        r, q = self._residuals(rows)
        variance = ((r @ self._schur_inv) * r).sum(axis=1) + (rows.cross * rows.cross) @ q
        result: Vector = np.sqrt(np.maximum(variance, 0.0))
        return result

    # -- state ------------------------------------------------------------------

    def copy(self) -> FactoredRidge:
        """Return an independent copy: every array copied, so it answers bit for bit as this model does."""
        twin = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(twin, name, value.copy())
        twin._approximate = set(self._approximate)
        twin._queue = list(self._queue)
        # Derived from the dense statistics when first asked for, as after a load.
        twin._dense_cache = None
        return twin

    def same_statistics(self, other: FactoredRidge) -> bool:
        """Return whether `other` holds the very statistics of this model (so the same examples lead both alike)."""
        if (self.n, self._mass, self.is_dense, self.ridge) != (other.n, other._mass, other.is_dense, other.ridge):
            return False
        if self._queue or other._queue:
            return False  # rows learned one by one and not added yet: not worth comparing
        if self._g_dense is not None:
            pairs = [(self._g_dense, other._g_dense), (self._r_dense, other._r_dense)]
        else:
            pairs = [(getattr(self, f"_{name}"), getattr(other, f"_{name}")) for name in _BLOCK_STATS]
        return all(mine is not None and theirs is not None and np.array_equal(mine, theirs) for mine, theirs in pairs)

    def to_bytes(self) -> bytes:
        """Return the statistics (the answers are derived from them on load)."""
        self._flush()
        buffer = io.BytesIO()
        n, mass = np.array(self.n), np.array(self._mass, dtype=np.int64)
        if self._g_dense is not None and self._r_dense is not None:
            np.savez(buffer, gram=self._g_dense, r=self._r_dense, n=n, mass=mass)
        else:
            np.savez(
                buffer,
                g_border=self._g_border,
                g_cross=self._g_cross,
                g_blocks=self._g_blocks,
                r_border=self._r_border,
                r_blocks=self._r_blocks,
                n=n,
                mass=mass,
            )
        return buffer.getvalue()

    def load(self, data: bytes) -> None:
        """Load a state of `to_bytes`, or convert one of the formats before the exact statistics (`migrated`)."""
        self._queue = []
        with np.load(io.BytesIO(data)) as arrays:
            files = set(arrays.files)
            self.migrated = not files & {"gram", "g_border"}
            if "gram" in files:
                self._load_dense(np.array(arrays["gram"], dtype=np.int64), np.array(arrays["r"], dtype=np.int64))
            elif "a_inv" in files:  # the dense inverse of before the statistics
                gram, r = _gram_of_inverse(arrays["a_inv"], arrays["b"], self.ridge)
                self._load_dense(gram, r)
            elif "g_border" in files:
                self._load_blocks({name: np.array(arrays[name], dtype=np.int64) for name in _BLOCK_STATS})
            else:  # the factored inverse of before the statistics
                self._load_blocks(_stats_of_factored_inverse(arrays, self.ridge))
            self.n = int(arrays["n"])
            self._mass = int(arrays["mass"]) if "mass" in files else self._estimated_mass()
        if self._g_dense is not None:
            self._derive_dense()
        else:
            self._derive(range(self._blocks))

    def _load_dense(self, gram: NDArray[np.int64], r: NDArray[np.int64]) -> None:
        if r.shape != (self.dim,):
            raise ValueError(f"model state has dimension {r.shape[0]}, expected {self.dim}")
        self._g_dense, self._r_dense = gram, r

    def _load_blocks(self, stats: Mapping[str, NDArray[np.int64]]) -> None:
        shape = (*stats["g_cross"].shape, stats["g_blocks"].shape[-1])
        expected = (self._blocks, self._border_dim, self._shared_dim, self._shared_dim)
        if shape != expected:
            raise ValueError(f"model state has dimension {shape[1] + shape[0] * shape[2]}, expected {self.dim}")
        self._g_border = stats["g_border"]
        self._g_cross = stats["g_cross"]
        self._g_blocks = stats["g_blocks"]
        self._r_border = stats["r_border"]
        self._r_blocks = stats["r_blocks"]
        self._g_dense = self._r_dense = None
        self._dense_cache = None

    def _estimated_mass(self) -> int:
        # A converted state has no exact mass: twice its largest sum stands in (the sums grow from there).
        arrays = (
            (self._g_dense, self._r_dense)
            if self._g_dense is not None
            else (self._g_border, self._g_blocks, self._r_border, self._r_blocks)
        )
        return 2 * max((int(np.abs(a).max()) for a in arrays if a is not None and a.size), default=0)


_BLOCK_STATS = ("g_border", "g_cross", "g_blocks", "r_border", "r_blocks")


def _to_products(values: Matrix) -> NDArray[np.int64]:
    return np.rint(values / _FROM_PRODUCTS).astype(np.int64)


def _symmetric(matrix: Matrix) -> Matrix:
    result: Matrix = 0.5 * (matrix + np.swapaxes(matrix, -1, -2))
    return result


def _gram_of_inverse(a_inv: Matrix, b: Vector, ridge: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the statistics of a dense inverse state (up to rounding): A = (A^-1)^-1 - ridge I."""
    a = _symmetric(np.linalg.inv(np.asarray(a_inv, dtype=np.float64))) - np.eye(len(b)) * ridge
    return _to_products(a), _to_products(np.asarray(b, dtype=np.float64))


def _stats_of_factored_inverse(arrays: Mapping[str, Any], ridge: float) -> dict[str, NDArray[np.int64]]:
    """Return the statistics of a factored inverse state (up to rounding), inverting the factorization."""
    block_inv = np.asarray(arrays["block_inv"], dtype=np.float64)
    c, ds = block_inv.shape[0], block_inv.shape[-1]
    e = np.asarray(arrays["e"], dtype=np.float64)
    db = e.shape[0]
    blocks = _symmetric(np.linalg.inv(block_inv).astype(np.float64))
    # E_j = C_j D_j^-1, so C_j = E_j D_j; and A_border = S + sum_j E_j C_j'.
    e_blocks = e.reshape(db, c, ds).transpose(1, 0, 2)
    cross = np.matmul(e_blocks, blocks)
    border = np.linalg.inv(np.asarray(arrays["schur_inv"], dtype=np.float64)) + np.matmul(
        e_blocks, np.swapaxes(cross, 1, 2)
    ).sum(axis=0)
    return {
        "g_border": _to_products(_symmetric(border) - np.eye(db) * ridge),
        "g_cross": _to_products(cross),
        "g_blocks": _to_products(blocks - np.eye(ds) * ridge),
        "r_border": _to_products(np.asarray(arrays["b_border"], dtype=np.float64)),
        "r_blocks": _to_products(np.asarray(arrays["b_blocks"], dtype=np.float64)),
    }


# -- the linear policies --------------------------------------------------------


class RidgeReadout:
    """Answers one decision's `DecisionRows` from a ridge model's state, read once per model state.

    Every candidate vector of a decision is a linear map of its compact row
    z = [used border columns, crossed coefficients]: x = L z, with L fixed
    by the shared vector s. So the mean is z' w with w = L' theta, and
    x' A^-1 x = z' Q z with Q = L' A^-1 L; both are formed once per decision,
    and each candidate then costs O((used + blocks)^2) instead of the
    O(dim^2) (dense) or O(border^2) (factored) of the model's own `width`.
    The answers equal the model's (tested); its own methods stay the
    reference. What depends only on the used columns is kept per column set.
    """

    def __init__(self, *, theta_border: Vector, border_inv: Matrix, theta_blocks: Matrix) -> None:
        self.blocks, self.shared_dim = theta_blocks.shape
        self._theta_border = theta_border
        self._border_inv = border_inv
        self._theta_blocks = theta_blocks
        self._by_columns: dict[bytes, tuple[Vector, Matrix, Matrix, Matrix]] = {}
        # The last decision's [Q | w] (read-only), by the identity of its rows: a shadow whose model
        # state equals the live one's shares this readout (`share_readout`) and reads it again.
        self._scored: tuple[DecisionRows, Matrix] | None = None
        self._digest: bytes | None = None

    @staticmethod
    def of(model: FactoredRidge) -> RidgeReadout:
        """Read `model` (its factors, or its dense inverse once it has turned dense)."""
        # The one place outside FactoredRidge that reads its state: keep it in step with the model's layout.
        dense = model._dense
        if dense is not None:
            return _DenseReadout(dense, border=model._border_dim, blocks=model._blocks, shared=model._shared_dim)
        return _FactoredReadout(model)

    def border(self, columns: Indices) -> tuple[Vector, Matrix]:
        """Return theta and the border block of A^-1 (S^-1 when factored) on `columns`."""
        theta, inv, _, _ = self._columns(columns)
        return theta, inv

    def _columns(self, columns: Indices) -> tuple[Vector, Matrix, Matrix, Matrix]:
        """Return `border(columns)`, [Q | w] with those filled in (to copy), and `_column_part(columns)`.

        What depends only on the model state and the used columns is kept per column set.
        """
        key = columns.tobytes()
        found = self._by_columns.get(key)
        if found is None:
            if len(self._by_columns) >= _COLUMN_SETS:
                self._by_columns.clear()
            theta, inv = self._theta_border[columns], self._border_inv[columns[:, None], columns]
            m = columns.size
            n = m + self.blocks
            template = np.zeros((n, n + 1))
            template[:m, :m] = inv
            template[:m, n] = theta
            found = (theta, inv, template, self._column_part(columns))
            self._by_columns[key] = found
        return found

    def _column_part(self, columns: Indices) -> Matrix:
        """Return what `form` reads for `columns` besides the border block (nothing by default)."""
        return np.empty((0, 0))

    def weights(self, rows: DecisionRows) -> Vector:
        """Return w with `z @ w` the unscaled mean of every row."""
        theta, _ = self.border(rows.columns)
        weights: Vector = np.concatenate((theta, self._theta_blocks @ rows.shared))
        return weights

    def form(self, rows: DecisionRows) -> Matrix:
        """Return Q with `z_k' Q z_k` the unscaled x' A^-1 x of row k."""
        raise NotImplementedError

    def scoring(self, rows: DecisionRows) -> Matrix:
        """Return [Q | w], equal to `form` and `weights` side by side up to rounding: one product scores every row.

        The optimistic policies score through it. Linear Thompson sampling
        reads `form`, whose bits it keeps: its eigendecomposition of the
        candidates' covariance turns a change in the last bit into other draws.
        The result of the last rows is kept (read-only): asked again for the
        same rows, it is returned as it was computed.
        """
        scored = self._scored
        if scored is not None and scored[0] is rows:
            return scored[1]
        q = self._scoring(rows)
        q.flags.writeable = False
        self._scored = (rows, q)
        return q

    def _scoring(self, rows: DecisionRows) -> Matrix:
        raise NotImplementedError

    def sources(self) -> tuple[Vector | Matrix, ...]:
        """Return every array this readout's answers are computed from (with its dimensions, all it reads)."""
        raise NotImplementedError

    def digest(self) -> bytes:
        """Return a BLAKE2b digest of the kind, dimensions and exact bytes of `sources`.

        Two readouts with the same digest read bit-identical arrays, so they
        give bit-identical answers: `share_readout` serves both from one.
        Computed once (a readout is only shared between published models,
        whose arrays never change).
        """
        if self._digest is None:
            h = hashlib.blake2b(type(self).__name__.encode(), digest_size=32)
            for array in self.sources():
                h.update(repr((array.dtype.str, array.shape)).encode())
                h.update(np.ascontiguousarray(array).tobytes())
            self._digest = h.digest()
        return self._digest


# Column sets a readout keeps its border blocks for (a recommender's candidates use one or a few).
_COLUMN_SETS = 16


class _FactoredReadout(RidgeReadout):
    """Q from `FactoredRidge`'s factors. With G = [E_1 s ... E_c s] and q_j = s' D_j^-1 s, a row with
    border b and crossed c has x' A^-1 x = (b - G c)' S^-1 (b - G c) + sum_j c_j^2 q_j, so
    Q = [[S^-1, -S^-1 G], [-G' S^-1, G' S^-1 G + diag(q)]] on the used border columns."""

    def __init__(self, model: FactoredRidge) -> None:
        model._refresh()
        db, c, ds = model._border_dim, model._blocks, model._shared_dim
        super().__init__(
            theta_border=model._theta_border, border_inv=model._schur_inv, theta_blocks=model._theta_blocks
        )
        self._schur_inv = model._schur_inv
        self._e = model._e.reshape(db, c, ds)
        self._block_inv = model._block_inv.reshape(c * ds, ds)

    def sources(self) -> tuple[Vector | Matrix, ...]:
        return (self._theta_border, self._schur_inv, self._theta_blocks, self._e, self._block_inv)

    def form(self, rows: DecisionRows) -> Matrix:
        q: Matrix = self.scoring(rows)[:, :-1]  # the same bits as [Q | w]: only the column of w is left out
        return q

    def _scoring(self, rows: DecisionRows) -> Matrix:
        s, columns, c = rows.shared, rows.columns, self.blocks
        _, _, template, _ = self._columns(columns)
        m = columns.size
        n = m + c
        g = self._e @ s
        sg = self._schur_inv @ g
        lower = g.T @ sg
        lower.ravel()[:: c + 1] += (self._block_inv @ s).reshape(c, self.shared_dim) @ s
        q = template.copy()
        np.negative(sg[columns], out=q[:m, m:n])
        q[m:, :m] = q[:m, m:n].T
        q[m:, m:n] = lower
        q[m:, n] = self._theta_blocks @ s
        return q


class _DenseReadout(RidgeReadout):
    """Q = L' A^-1 L from a dense inverse, with L = blockdiag(used border columns, I_blocks (x) s).

    The crossed corner of Q holds s' B_ij s for every pair of crossed blocks,
    B_ij the (i, j) block of A^-1: a quadratic form in s, so it is one product
    of a matrix read once per model state with the distinct products s_a s_b
    (B_ij[a, b] and B_ij[b, a] added up on a <= b, for i <= j only, as Q is
    symmetric): about a third of the work of contracting every block with s.
    Its answers equal the model's up to rounding (tested).
    """

    def __init__(self, model: RidgeModel, *, border: int, blocks: int, shared: int) -> None:
        super().__init__(
            theta_border=model.theta[:border],
            border_inv=model.a_inv[:border, :border],
            theta_blocks=model.theta[border:].reshape(blocks, shared),
        )
        # A^-1 between each border column and each crossed block (sliced to the used columns per column set).
        self._coupling = model.a_inv[:border, border:].reshape(border, blocks, shared)
        folding = _Folding.of(border, blocks, shared)
        self._low, self._high, self._pair_of = folding.low, folding.high, folding.pair_of
        # B_ij[a, b] + B_ij[b, a], and on a == b twice B_ij[a, a] halved again (exact).
        self._folded = model.a_inv.take(folding.upper)
        self._folded += model.a_inv.take(folding.lower)
        self._folded[:, folding.diagonal] *= 0.5
        self._a_inv, self._border = model.a_inv, border
        self._theta = model.theta
        self._crossed: Matrix | None = None

    def sources(self) -> tuple[Vector | Matrix, ...]:
        # theta and A^-1 (with the border width and block shape) are all the other arrays are made of.
        return (self._theta, self._a_inv, self._theta_blocks)

    def _column_part(self, columns: Indices) -> Matrix:
        # The couplings of the used columns with theta's crossed blocks as one more row: one product with s.
        part: Matrix = np.concatenate((self._coupling[columns], self._theta_blocks[None]))
        return part

    def form(self, rows: DecisionRows) -> Matrix:
        # Every block contracted with s in turn, as before `scoring`: linear Thompson sampling keeps its bits.
        s, columns, c = rows.shared, rows.columns, self.blocks
        _, inv = self.border(columns)
        m = columns.size
        if self._crossed is None:
            # Contiguous, so that one matrix-vector product per decision contracts every block with s.
            self._crossed = np.ascontiguousarray(self._a_inv[:, self._border :]).reshape(-1, self.shared_dim)
        t = (self._crossed @ s).reshape(-1, c)  # A^-1 times the crossed columns of L
        q = np.empty((m + c, m + c))
        q[:m, :m] = inv
        q[:m, m:] = t[columns]
        q[m:, :m] = q[:m, m:].T
        q[m:, m:] = s @ t[self._border :].reshape(c, s.size, c)
        return q

    def _scoring(self, rows: DecisionRows) -> Matrix:
        s, columns, c = rows.shared, rows.columns, self.blocks
        _, _, template, coupling = self._columns(columns)
        m = columns.size
        n = m + c
        q = template.copy()
        linear = coupling @ s  # (m + 1, c): the coupling of each used column with each block, then w's blocks
        q[:m, m:n] = linear[:m]
        q[m:, :m] = linear[:m].T
        q[m:, n] = linear[m]
        q[m:, m:n] = (self._folded @ (s.take(self._low) * s.take(self._high))).take(self._pair_of).reshape(c, c)
        return q


@dataclass(frozen=True, slots=True)
class _Folding:
    """Where `_DenseReadout` reads its folded crossed corner in a dense A^-1, per layout shape."""

    upper: Indices  # (pairs, products): the flat position of B_ij[a, b], i <= j, a <= b
    lower: Indices  # the flat position of B_ij[b, a]
    diagonal: Indices  # the products with a == b
    low: Indices  # a of each product
    high: Indices  # b of each product
    pair_of: Indices  # the pair of each (i, j) of the crossed corner, flat

    @staticmethod
    @functools.cache
    def of(border: int, blocks: int, shared: int) -> _Folding:
        dim = border + blocks * shared
        first, second = np.triu_indices(blocks)
        low, high = np.triu_indices(shared)
        rows = (border + first * shared)[:, None]
        columns = (border + second * shared)[:, None]
        pair_of = np.empty((blocks, blocks), dtype=np.intp)
        pair_of[first, second] = np.arange(first.size)
        pair_of[second, first] = np.arange(first.size)
        return _Folding(
            upper=(rows + low) * dim + columns + high,
            lower=(rows + high) * dim + columns + low,
            diagonal=np.flatnonzero(low == high),
            low=low,
            high=high,
            pair_of=pair_of.ravel(),
        )


# The width of the chosen candidate, computed only once the pick is known.
WidthAt = Callable[[int], float]


class _LinearPolicy:
    """Shared plumbing of policies built on one ridge model over candidate vectors."""

    kind: ClassVar[str]

    def __init__(self, *, features: FeatureSpec, ridge: float, shared_weights: bool) -> None:
        self.features = features
        self.layout = layout_for(features, shared_weights=shared_weights)
        self.model = FactoredRidge(self.layout, ridge)
        # What pick reads of the model, and the model state it was read from (learn and load_state move on).
        self._state = 0
        self._readout: tuple[int, RidgeReadout] | None = None

    @property
    def version(self) -> int:
        return self.model.n

    def readout(self) -> RidgeReadout:
        """Return what pick reads of the model, for its current state."""
        cached = self._readout
        if cached is not None and cached[0] == self._state:
            return cached[1]
        state = self._state
        readout = RidgeReadout.of(self.model)
        self._readout = (state, readout)
        return readout

    def _mean(self, rows: DecisionRows) -> Vector:
        mean: Vector = rows.z @ self.readout().weights(rows)
        if rows.scale is not None:
            mean *= rows.scale
        return mean

    def _optimistic(self, rows: DecisionRows, alpha: float) -> tuple[Vector, WidthAt]:
        """Return mean + alpha * width of every row, and the width of any one row."""
        z = rows.z
        q = self.readout().scoring(rows)
        n = q.shape[0]
        zq = z @ q
        root = np.vecdot(zq[:, :n], z)
        np.maximum(root, 0.0, out=root)
        np.sqrt(root, out=root)
        scores: Vector = alpha * root
        scores += zq[:, n]  # the mean
        scale = rows.scale
        if scale is None:
            return scores, lambda index: float(root[index])
        scores *= scale
        return scores, lambda index: float(root[index] * scale[index])

    def _covariance(self, rows: DecisionRows) -> Matrix:
        z = rows.z if rows.scale is None else rows.z * rows.scale[:, None]
        covariance: Matrix = z @ self.readout().form(rows) @ z.T
        return covariance

    def _width_of(self, rows: DecisionRows, index: int) -> float:
        z = rows.z[index]
        width = float(np.sqrt(max(float(z @ self.readout().form(rows) @ z), 0.0)))
        return width if rows.scale is None else width * float(rows.scale[index])

    def _explore(self, rows: DecisionRows, rng: np.random.Generator) -> tuple[Vector, WidthAt | None]:
        """Return the exploring probabilities and, when computed on the way, the width of any row."""
        raise NotImplementedError

    def pick(
        self, *, context: Features, candidates: Sequence[Features], rng: np.random.Generator, explore: bool = True
    ) -> Decision:
        require_candidates(candidates)
        rows = self.layout.decision(context, candidates)
        width_at: WidthAt | None = None
        if explore:
            probabilities, width_at = self._explore(rows, rng)
        else:
            probabilities = argmax_share(self._mean(rows))
        index = sample_index(probabilities, rng)
        width = self._width_of(rows, index) if width_at is None else width_at(index)
        return Decision(
            index=index, probabilities=tuple(probabilities.tolist()), confidence=1.0 / (1.0 + width), explored=explore
        )

    def learn(self, batch: Sequence[LoggedReward]) -> None:
        self._state += 1
        if batch:
            self.model.learn(self.layout.learn_rows(batch))

    def state_bytes(self) -> bytes:
        return self.model.to_bytes()

    def load_state(self, data: bytes) -> None:
        self._state += 1
        self.model.load(data)

    def _learns_like(self, other: _LinearPolicy) -> bool:
        """Whether `other` would learn any batch exactly as this policy does: same layout, ridge and statistics.

        Both must also be derived from their statistics alone (not updated one example at a time), so that
        their answers, and not only their statistics, are the same numbers.
        """
        return (
            self.layout is other.layout
            and self.model.derived_exactly
            and other.model.derived_exactly
            and self.model.same_statistics(other.model)
        )

    def _take_model_of(self, other: _LinearPolicy) -> None:
        """Hold a copy of `other`'s model (which this policy's would equal after learning what it learned)."""
        self._state += 1
        self.model = other.model.copy()

    def _copy(self) -> Self:
        twin = copy.copy(self)
        twin.model = self.model.copy()
        twin._readout = None
        return twin


class EpsilonGreedyPolicy(_LinearPolicy):
    kind: ClassVar[str] = "epsilon_greedy"

    def __init__(self, spec: EpsilonGreedySpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, shared_weights=spec.shared_weights)
        self.spec = spec

    def _explore(self, rows: DecisionRows, rng: np.random.Generator) -> tuple[Vector, WidthAt | None]:
        return argmax_with_floor(self._mean(rows), self.spec.epsilon), None

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


class LinUCBPolicy(_LinearPolicy):
    kind: ClassVar[str] = "linucb"

    def __init__(self, spec: LinUCBSpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, shared_weights=spec.shared_weights)
        self.spec = spec

    def _explore(self, rows: DecisionRows, rng: np.random.Generator) -> tuple[Vector, WidthAt | None]:
        scores, width_at = self._optimistic(rows, self.spec.alpha)
        return argmax_with_floor(scores, self.spec.floor), width_at

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


class LinearTSPolicy(_LinearPolicy):
    kind: ClassVar[str] = "linear_ts"

    def __init__(self, spec: LinearTSSpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, shared_weights=spec.shared_weights)
        self.spec = spec

    def _explore(self, rows: DecisionRows, rng: np.random.Generator) -> tuple[Vector, WidthAt | None]:
        mean = self._mean(rows)
        covariance = self._covariance(rows)
        # Sampling theta ~ N(theta_hat, v^2 A^-1) and scoring the candidates is the same as sampling the
        # scores ~ N(X theta_hat, v^2 X A^-1 X'): k x k instead of dim x dim.
        eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (covariance + covariance.T))
        root = eigenvectors * np.sqrt(np.maximum(eigenvalues, 0.0))
        draws = mean[:, None] + self.spec.scale * (root @ rng.standard_normal((mean.size, self.spec.draws)))
        best = draws >= draws.max(axis=0) - 1e-12
        if np.count_nonzero(best) == self.spec.draws:
            wins = np.bincount(draws.argmax(axis=0), minlength=mean.size) / self.spec.draws
        else:  # a draw whose best score is tied (identical candidates) counts for each of them equally
            wins = (best / best.sum(axis=0)).sum(axis=1) / self.spec.draws
        widths = np.sqrt(np.maximum(np.diag(covariance), 0.0))
        return mix_with_uniform(wins, self.spec.floor), lambda index: float(widths[index])

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


def inverse_gap_weights(scores: Vector, gamma: float) -> Vector:
    """Return SquareCB's probabilities: 1 / (k + gamma * gap) for trailing candidates, the rest to the best."""
    k = scores.size
    top = scores.max()
    best = scores >= top - 1e-12
    probabilities = np.where(best, 0.0, 1.0 / (k + gamma * (top - scores)))
    probabilities[best] = (1.0 - probabilities.sum()) / best.sum()
    result: Vector = probabilities
    return result


class RidgeIGWPolicy(_LinearPolicy):
    kind: ClassVar[str] = "ridge_igw"

    def __init__(self, spec: RidgeIGWSpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, shared_weights=spec.shared_weights)
        self.spec = spec

    def _explore(self, rows: DecisionRows, rng: np.random.Generator) -> tuple[Vector, WidthAt | None]:
        scores, width_at = self._optimistic(rows, self.spec.alpha)
        return mix_with_uniform(inverse_gap_weights(scores, self.spec.gamma), self.spec.floor), width_at

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


PolicySpec = UniformSpec | EpsilonGreedySpec | LinUCBSpec | LinearTSSpec | RidgeIGWSpec | VWCbAdfSpec
SPEC_TYPES: dict[str, type[PolicySpec]] = {
    "uniform": UniformSpec,
    "epsilon_greedy": EpsilonGreedySpec,
    "linucb": LinUCBSpec,
    "linear_ts": LinearTSSpec,
    "ridge_igw": RidgeIGWSpec,
    "vw_cb_adf": VWCbAdfSpec,
}


def build_policy(spec: PolicySpec, *, features: FeatureSpec) -> Policy:
    """Return a fresh, untrained policy for `spec`."""
    match spec:
        case UniformSpec():
            return UniformPolicy(spec)
        case EpsilonGreedySpec():
            return EpsilonGreedyPolicy(spec, features=features)
        case LinUCBSpec():
            return LinUCBPolicy(spec, features=features)
        case LinearTSSpec():
            return LinearTSPolicy(spec, features=features)
        case RidgeIGWSpec():
            return RidgeIGWPolicy(spec, features=features)
        case VWCbAdfSpec():
            # Imported here: Vowpal Wabbit loads a native library, and only this policy needs it.
            from tipwise.ml.serving.vw import VWPolicy

            return VWPolicy(spec, features=features)


def learn_together(models: Iterable[Policy], batch: Sequence[LoggedReward]) -> None:
    """Let every model of `models` learn `batch`; linear models that would learn it alike learn it once.

    LinUCB and epsilon-greedy (by default) learn the same examples with the same layout and
    ridge, so their statistics stay equal: after the same batch they are equal again. The
    first of such models learns the batch, the others take a copy of its model, which is what
    their own learning would have given, array for array. Nothing is assumed: the statistics
    are compared first (a few hundred kB of integers), and a model in another state, with
    another layout or ridge, or not yet derived from its statistics alone, learns on its own.
    """
    leaders: list[_LinearPolicy] = []
    followers: list[tuple[_LinearPolicy, _LinearPolicy]] = []
    for model in models:
        if not isinstance(model, _LinearPolicy):
            model.learn(batch)
            continue
        leader = next((other for other in leaders if other._learns_like(model)), None)
        if leader is None:
            leaders.append(model)
        else:
            followers.append((model, leader))
    for leader in leaders:
        leader.learn(batch)
    for follower, leader in followers:
        follower._take_model_of(leader)


def exact_copy(model: Policy) -> Policy | None:
    """Return an array-by-array copy of a linear model whose answers come from its statistics alone, else None.

    Such a model holds exactly the factors a load of its state derives, so the copy answers bit
    for bit as a fresh policy loaded with `model.state_bytes()` would, without inverting every
    block again as a load does. A model updated one example at a time since its last derivation
    (or any other kind of model) has no such copy: load it from its state instead.
    """
    if isinstance(model, _LinearPolicy) and model.model.derived_exactly:
        return model._copy()
    return None


def share_readout(model: Policy, published: Iterable[Policy]) -> None:
    """Let `model` read through the readout of a published model whose state gives a bit-identical one.

    For `PolicyRegistry.publish`: the live policy and a shadow that learn the
    same examples with the same ridge and layout (LinUCB and epsilon-greedy
    by default) usually hold equal states, and sharing the readout lets the
    shadow reuse the live pick's [Q | w] for its confidence instead of
    forming it again. Never assumed: the readouts' digests cover the exact
    bytes of every array they read, so the shared readout answers bit for bit
    as `model`'s own would. Only for published models: they are never
    mutated again, so neither are the arrays a shared readout reads.
    """
    if not isinstance(model, _LinearPolicy):
        return
    own = model.readout()
    for other in published:
        if other is model or not isinstance(other, _LinearPolicy):
            continue
        theirs = other.readout()
        if theirs is not own and theirs.digest() == own.digest():
            model._readout = (model._state, theirs)
            return


def state_is_converted(policy: Policy) -> bool:
    """Return whether `policy` loaded a state format from before the exact statistics (converted up to rounding).

    Such a model answers as before, but a replay of the log no longer equals it
    bit for bit; the learner rebuilds it from the log when it restores it.
    """
    return isinstance(policy, _LinearPolicy) and policy.model.migrated


def spec_from_dict(data: Mapping[str, Any]) -> PolicySpec:
    """Parse a spec from its dict form (as stored with a model); raises ValueError on bad input."""
    kind = data.get("kind")
    spec_type = SPEC_TYPES.get(str(kind))
    if spec_type is None:
        raise ValueError(f"unknown policy kind {kind!r}; known: {sorted(SPEC_TYPES)}")
    try:
        return spec_type(**dict(data))
    except TypeError as exc:
        raise ValueError(f"bad {kind} policy spec: {exc}") from exc
