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
block (one category, one action id), so the model keeps its inverse Gram
matrix in blocks (`FactoredRidge`); its answers equal those of the plain
`RidgeModel` on the same vectors at a fraction of the cost. By default the
shared block is left out of the model (`shared_weights=False`, see
`FeatureLayout`). Without exploration every linear policy is greedy on the
ridge estimate.

The defaults (ridge 5, no shared weights, floor 0.01, and each policy's own
knob) were chosen once, for every stream, from a small grid on
`tipwise bench learn`; docs/benchmarks.md has the measurements.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

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
    best = scores >= scores.max() - 1e-12
    probabilities: Vector = best * ((1.0 - floor_mass) / np.count_nonzero(best))
    probabilities += floor_mass / scores.size
    return probabilities


def sample_index(probabilities: Vector, rng: np.random.Generator) -> int:
    """Draw a candidate index from `probabilities` with one uniform draw from `rng`."""
    # Inverse-CDF sampling with one uniform draw keeps replays exact and cheap.
    cumulative = np.cumsum(probabilities)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), probabilities.size - 1))


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
            index=sample_index(probabilities, rng), probabilities=tuple(probabilities), confidence=0.0, explored=True
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
        self._learn_memo: tuple[Sequence[LoggedReward], list[CandidateRows]] | None = None

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
            scale = prepared.cross_sq1 * float(s @ s)
            scale += prepared.action_sq
            np.maximum(scale, _TINY, out=scale)
            np.sqrt(scale, out=scale)
            np.divide(1.0, scale, out=scale)
        return DecisionRows(layout=self, shared=s, columns=columns, z=z, scale=scale)

    def rows(self, shared: Features, actions: Sequence[Features]) -> CandidateRows:
        """Return the full candidate rows of one decision (the factored form `FactoredRidge` reads)."""
        return self.decision(shared, actions).candidate_rows()

    def learn_rows(self, batch: Sequence[LoggedReward]) -> list[CandidateRows]:
        """Return the row of each example's chosen action; policies learning one batch share them.

        A one-entry memo keyed by the batch's identity (and holding it), like `prepare`.
        """
        memo = self._learn_memo
        if memo is not None and memo[0] is batch:
            return memo[1]
        rows = [self._rows(example.shared, (example.action,)) for example in batch]
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


class FactoredRidge:
    """Exact online ridge regression over a `FeatureLayout`'s vectors, keeping A^-1 in factored form.

    While every learned row switches on at most one crossed block, the Gram
    matrix A is an arrowhead: a border block (shared + action features), one
    diagonal block D_j per `action_cross` feature, and couplings C_j between
    them. Its inverse is then fully described by the inverse Schur complement
    S^-1 = (A_border - sum_j C_j D_j^-1 C_j')^-1, the blocks D_j^-1, and
    E_j = C_j D_j^-1; a Sherman-Morrison update of A^-1 is a rank-one update
    of S^-1, of E_j and of D_j^-1 alone. That costs O(border^2 + border *
    shared + shared^2) per example instead of the O(dim^2) of a dense inverse
    (dim = border + blocks * shared), which is what makes the 860-dimensional
    benchmark stream affordable. A row that switches on two crossed blocks at
    once couples them; the model then turns into a dense `RidgeModel` for
    good, with the same answers.

    The state is that factored inverse and the reward-weighted sums; the
    coefficients are derived from them on demand, so a model rebuilt from
    its bytes answers bit for bit like the one that learned.
    """

    def __init__(self, layout: FeatureLayout, ridge: float) -> None:
        self.ridge = ridge
        self._shared_dim = layout.shared_dim
        self._border_dim = layout.border_dim
        self._blocks = layout.blocks
        ds, db, c = self._shared_dim, self._border_dim, self._blocks
        self.n = 0
        self._schur_inv = np.eye(db) / ridge
        # [E_1 ... E_c] side by side: one matrix product serves every block at once.
        self._e = np.zeros((db, c * ds))
        self._block_inv = np.repeat((np.eye(ds) / ridge)[None], c, axis=0)
        self._b_border = np.zeros(db)
        self._b_blocks = np.zeros((c, ds))
        self._dense: RidgeModel | None = None
        self._theta_border = np.zeros(db)
        self._theta_blocks = np.zeros((c, ds))
        self._stale = False

    @property
    def dim(self) -> int:
        return self._border_dim + self._blocks * self._shared_dim

    @property
    def is_dense(self) -> bool:
        return self._dense is not None

    # -- learning -------------------------------------------------------------

    def update(self, rows: CandidateRows, reward: float) -> None:
        """Learn `reward` for the single row in `rows`."""
        coefficients = rows.cross[0]
        active = np.flatnonzero(coefficients)
        if self._dense is None and active.size > 1:
            self._to_dense()
        if self._dense is not None:
            self._dense.update(rows.dense()[0], reward)
            self.n = self._dense.n
            return
        x_border = rows.border[0]
        if active.size == 1:
            j = int(active[0])
            block = slice(j * self._shared_dim, (j + 1) * self._shared_dim)
            x_block = coefficients[j] * rows.shared
            u = self._block_inv[j] @ x_block
            beta = 1.0 + x_block @ u
            r = x_border - self._e[:, block] @ x_block
            g = self._schur_inv @ r
            # The Sherman-Morrison update of A^-1, read block by block (see the class docstring).
            self._schur_inv -= g[:, None] * (g / (beta + r @ g))
            self._e[:, block] += (r / beta)[:, None] * u
            self._block_inv[j] -= u[:, None] * (u / beta)
            self._b_blocks[j] += reward * x_block
        else:
            g = self._schur_inv @ x_border
            self._schur_inv -= g[:, None] * (g / (1.0 + x_border @ g))
        self._b_border += reward * x_border
        self._stale = True
        self.n += 1

    def _to_dense(self) -> None:
        db = self._border_dim
        e = self._e
        s_inv_e = self._schur_inv @ e
        a_inv = np.zeros((self.dim, self.dim))
        a_inv[:db, :db] = self._schur_inv
        a_inv[:db, db:] = -s_inv_e
        a_inv[db:, :db] = -s_inv_e.T
        a_inv[db:, db:] = e.T @ s_inv_e
        for j in range(self._blocks):
            block = slice(db + j * self._shared_dim, db + (j + 1) * self._shared_dim)
            a_inv[block, block] += self._block_inv[j]
        dense = RidgeModel(self.dim, self.ridge)
        dense.a_inv = a_inv
        dense.b = np.concatenate([self._b_border, self._b_blocks.ravel()])
        dense.theta = a_inv @ dense.b
        dense.n = self.n
        self._dense = dense

    def _refresh(self) -> None:
        if not self._stale:
            return
        # theta_border = S^-1 (b_border - sum_j E_j b_j); theta_j = D_j^-1 b_j - E_j' theta_border.
        self._theta_border = self._schur_inv @ (self._b_border - self._e @ self._b_blocks.ravel())
        d_b = np.matmul(self._block_inv, self._b_blocks[:, :, None])[:, :, 0]
        self._theta_blocks = d_b - (self._theta_border @ self._e).reshape(self._blocks, self._shared_dim)
        self._stale = False

    # -- answering --------------------------------------------------------------

    def mean(self, rows: CandidateRows) -> Vector:
        """Return the predicted reward of every row."""
        if self._dense is not None:
            return self._dense.mean(rows.dense())
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
        if self._dense is not None:
            return self._dense.covariance(rows.dense())
        r, q = self._residuals(rows)
        result: Matrix = r @ self._schur_inv @ r.T + (rows.cross * q) @ rows.cross.T
        return result

    def width(self, rows: CandidateRows) -> Vector:
        """Return sqrt(x' A^-1 x) per row: how unsure the model is about each candidate."""
        if self._dense is not None:
            return self._dense.width(rows.dense())
        r, q = self._residuals(rows)
        variance = ((r @ self._schur_inv) * r).sum(axis=1) + (rows.cross * rows.cross) @ q
        result: Vector = np.sqrt(np.maximum(variance, 0.0))
        return result

    # -- state ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        if self._dense is not None:
            return self._dense.to_bytes()
        buffer = io.BytesIO()
        np.savez(
            buffer,
            schur_inv=self._schur_inv,
            e=self._e,
            block_inv=self._block_inv,
            b_border=self._b_border,
            b_blocks=self._b_blocks,
            n=np.array(self.n),
        )
        return buffer.getvalue()

    def load(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as arrays:
            if "a_inv" in arrays.files:  # a dense state (also the format before the factored model)
                dense = RidgeModel(self.dim, self.ridge)
                dense.load_arrays(arrays)
                self._dense = dense
                self.n = dense.n
                return
            shape = (*arrays["e"].shape, *arrays["b_blocks"].shape)
            expected = (self._border_dim, self._blocks * self._shared_dim, self._blocks, self._shared_dim)
            if shape != expected:
                raise ValueError(f"model state has dimension {shape[0] + shape[1]}, expected {self.dim}")
            self._schur_inv = np.array(arrays["schur_inv"], dtype=np.float64)
            self._e = np.array(arrays["e"], dtype=np.float64)
            self._block_inv = np.array(arrays["block_inv"], dtype=np.float64)
            self._b_border = np.array(arrays["b_border"], dtype=np.float64)
            self._b_blocks = np.array(arrays["b_blocks"], dtype=np.float64)
            self.n = int(arrays["n"])
        self._dense = None
        self._stale = True


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
        self._by_columns: dict[bytes, tuple[Vector, Matrix]] = {}

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
        key = columns.tobytes()
        found = self._by_columns.get(key)
        if found is None:
            if len(self._by_columns) >= _COLUMN_SETS:
                self._by_columns.clear()
            found = (self._theta_border[columns], self._border_inv[columns[:, None], columns])
            self._by_columns[key] = found
        return found

    def weights(self, rows: DecisionRows) -> Vector:
        """Return w with `z @ w` the unscaled mean of every row."""
        theta, _ = self.border(rows.columns)
        weights: Vector = np.concatenate((theta, self._theta_blocks @ rows.shared))
        return weights

    def form(self, rows: DecisionRows) -> Matrix:
        """Return Q with `z_k' Q z_k` the unscaled x' A^-1 x of row k."""
        raise NotImplementedError


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

    def form(self, rows: DecisionRows) -> Matrix:
        s, columns, c = rows.shared, rows.columns, self.blocks
        _, inv = self.border(columns)
        m = columns.size
        g = self._e @ s
        sg = self._schur_inv @ g
        lower = g.T @ sg
        lower.ravel()[:: c + 1] += (self._block_inv @ s).reshape(c, self.shared_dim) @ s
        q = np.empty((m + c, m + c))
        q[:m, :m] = inv
        np.negative(sg[columns], out=q[:m, m:])
        q[m:, :m] = q[:m, m:].T
        q[m:, m:] = lower
        return q


class _DenseReadout(RidgeReadout):
    """Q = L' A^-1 L from a dense inverse, with L = blockdiag(used border columns, I_blocks (x) s)."""

    def __init__(self, model: RidgeModel, *, border: int, blocks: int, shared: int) -> None:
        super().__init__(
            theta_border=model.theta[:border],
            border_inv=model.a_inv[:border, :border],
            theta_blocks=model.theta[border:].reshape(blocks, shared),
        )
        self._border = border
        # Contiguous, so that one matrix-vector product per decision contracts every block with s.
        self._crossed = np.ascontiguousarray(model.a_inv[:, border:]).reshape(-1, shared)

    def form(self, rows: DecisionRows) -> Matrix:
        s, columns, c = rows.shared, rows.columns, self.blocks
        _, inv = self.border(columns)
        m = columns.size
        t = (self._crossed @ s).reshape(-1, c)  # A^-1 times the crossed columns of L
        q = np.empty((m + c, m + c))
        q[:m, :m] = inv
        q[:m, m:] = t[columns]
        q[m:, :m] = q[:m, m:].T
        q[m:, m:] = s @ t[self._border :].reshape(c, s.size, c)
        return q


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
        readout = self.readout()
        z = rows.z
        root = np.vecdot(z @ readout.form(rows), z)
        np.maximum(root, 0.0, out=root)
        np.sqrt(root, out=root)
        scores: Vector = z @ readout.weights(rows)
        scores += alpha * root
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
        for rows, example in zip(self.layout.learn_rows(batch), batch, strict=True):
            self.model.update(rows, example.reward)

    def state_bytes(self) -> bytes:
        return self.model.to_bytes()

    def load_state(self, data: bytes) -> None:
        self._state += 1
        self.model.load(data)


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
