"""Contextual-bandit policies: a frozen, validated spec plus learned state.

Every policy returns the probability of every candidate, so the logged
propensity of the chosen action is exact and off-policy evaluation can
compare any two policies on the same log. Randomness comes only from the
`numpy.random.Generator` passed in: the same state, inputs and seed give the
same decision.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from tipwise.ml.serving.features import FeatureSpec, Matrix, Vector

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


def _check_candidates(candidates: Sequence[Features]) -> None:
    if not candidates:
        raise ValueError("pick needs at least one candidate")


def _mix_with_uniform(greedy: Vector, floor_mass: float) -> Vector:
    k = greedy.size
    return (1.0 - floor_mass) * greedy + floor_mass / k


def _argmax_share(scores: Vector) -> Vector:
    """Split probability 1 evenly over the top-scoring candidates."""
    best = (scores >= scores.max() - 1e-12).astype(np.float64)
    share: Vector = best / best.sum()
    return share


def _sample(probabilities: Vector, rng: np.random.Generator) -> int:
    # Inverse-CDF sampling with one uniform draw keeps replays exact and cheap.
    cumulative = np.cumsum(probabilities)
    return int(min(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"), probabilities.size - 1))


@dataclass(frozen=True, kw_only=True)
class UniformSpec:
    """Every candidate equally likely; the baseline every learner must beat."""

    kind: Literal["uniform"] = "uniform"


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
        _check_candidates(candidates)
        k = len(candidates)
        probabilities = np.full(k, 1.0 / k)
        return Decision(
            index=_sample(probabilities, rng), probabilities=tuple(probabilities), confidence=0.0, explored=True
        )

    def learn(self, batch: Sequence[LoggedReward]) -> None:
        self._version += len(batch)

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)

    def state_bytes(self) -> bytes:
        return json.dumps({"version": self._version}).encode()

    def load_state(self, data: bytes) -> None:
        self._version = int(json.loads(data)["version"])


class RidgeModel:
    """Online ridge regression, keeping the inverse Gram matrix by Sherman-Morrison updates."""

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

    def width(self, features: Matrix) -> Vector:
        """Return sqrt(x' A^-1 x) per row: how unsure the model is about each candidate."""
        result: Vector = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", features, self.a_inv, features), 0.0))
        return result

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, a_inv=self.a_inv, b=self.b, n=np.array(self.n))
        return buffer.getvalue()

    def load(self, data: bytes) -> None:
        with np.load(io.BytesIO(data)) as arrays:
            if arrays["b"].shape != self.b.shape:
                raise ValueError(f"model state has dimension {arrays['b'].shape[0]}, expected {self.b.shape[0]}")
            self.a_inv = arrays["a_inv"].copy()
            self.b = arrays["b"].copy()
            self.n = int(arrays["n"])
        self.theta = self.a_inv @ self.b


class _LinearPolicy:
    """Shared plumbing of policies built on one ridge model over candidate vectors."""

    kind: ClassVar[str]

    def __init__(self, *, features: FeatureSpec, ridge: float, floor: float) -> None:
        self.features = features
        self.model = RidgeModel(features.dim, ridge)
        self._floor = floor

    @property
    def version(self) -> int:
        return self.model.n

    def _scores(self, x: Matrix) -> Vector:
        raise NotImplementedError

    def pick(
        self, *, context: Features, candidates: Sequence[Features], rng: np.random.Generator, explore: bool = True
    ) -> Decision:
        _check_candidates(candidates)
        x = self.features.matrix(context, candidates)
        greedy = _argmax_share(self._scores(x))
        probabilities = self._explore(greedy) if explore else greedy
        index = _sample(probabilities, rng)
        width = float(self.model.width(x[index : index + 1])[0])
        return Decision(
            index=index, probabilities=tuple(probabilities.tolist()), confidence=1.0 / (1.0 + width), explored=explore
        )

    def _explore(self, greedy: Vector) -> Vector:
        return _mix_with_uniform(greedy, self._floor)

    def learn(self, batch: Sequence[LoggedReward]) -> None:
        for example in batch:
            self.model.update(self.features.row(example.shared, example.action), example.reward)

    def state_bytes(self) -> bytes:
        return self.model.to_bytes()

    def load_state(self, data: bytes) -> None:
        self.model.load(data)


@dataclass(frozen=True, kw_only=True)
class EpsilonGreedySpec:
    """Greedy on a ridge estimate, uniform with probability `epsilon`."""

    kind: Literal["epsilon_greedy"] = "epsilon_greedy"
    epsilon: float = 0.1
    ridge: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError("epsilon must be within [0, 1]")
        if self.ridge <= 0:
            raise ValueError("ridge must be > 0")


class EpsilonGreedyPolicy(_LinearPolicy):
    kind: ClassVar[str] = "epsilon_greedy"

    def __init__(self, spec: EpsilonGreedySpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, floor=spec.epsilon)
        self.spec = spec

    def _scores(self, x: Matrix) -> Vector:
        return self.model.mean(x)

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


@dataclass(frozen=True, kw_only=True)
class LinUCBSpec:
    """LinUCB with one shared ridge model over context x action features.

    `floor` spreads that much probability mass uniformly over all candidates,
    so no candidate's propensity drops below floor/k and the logs stay usable
    for off-policy evaluation.
    """

    kind: Literal["linucb"] = "linucb"
    alpha: float = 1.0
    ridge: float = 1.0
    floor: float = 0.05

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        if self.ridge <= 0:
            raise ValueError("ridge must be > 0")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError("floor must be within [0, 1)")


class LinUCBPolicy(_LinearPolicy):
    kind: ClassVar[str] = "linucb"

    def __init__(self, spec: LinUCBSpec, *, features: FeatureSpec) -> None:
        super().__init__(features=features, ridge=spec.ridge, floor=spec.floor)
        self.spec = spec

    def _scores(self, x: Matrix) -> Vector:
        return self.model.mean(x) + self.spec.alpha * self.model.width(x)

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)


PolicySpec = UniformSpec | EpsilonGreedySpec | LinUCBSpec
SPEC_TYPES: dict[str, type[UniformSpec] | type[EpsilonGreedySpec] | type[LinUCBSpec]] = {
    "uniform": UniformSpec,
    "epsilon_greedy": EpsilonGreedySpec,
    "linucb": LinUCBSpec,
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
