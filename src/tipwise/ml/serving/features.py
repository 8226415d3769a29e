"""Turn named features into the vectors the linear policies score.

A context is a mapping of shared feature names to values (about the person
and the moment); each candidate has its own mapping (about the tip). The
vector of a candidate is `[shared, action, action_cross (x) shared]`: the
crossed block lets one linear model learn, say, that movement tips work in
the morning but not at night.

Each namespace (shared, action) is either hashed to a fixed width or laid
out by its declared names:

- hashed (`shared_bits` / `action_bits` set), as Vowpal Wabbit does: a name's
  position is `blake2b(name, digest_size=8, salt=seed)` read as a
  little-endian integer, modulo `2**bits`. blake2b is in the standard library
  and gives the same bucket in every process, on every platform and Python
  version (Python's own `hash()` of a string is salted per process). Values
  of names that share a bucket add up. A name the spec does not declare is
  not an error: it lands in its bucket, so a new feature reaches a model of
  the same width without a new spec. The declared names are the ones the
  spec knows about; `collisions()` lists those that share a bucket.
- declared (bits None): one position per declared name, in order; an
  unknown name raises KeyError.

A crossed block belongs to the action position of an `action_cross` name:
whatever lands there (in a hashed namespace, also an unknown name that
shares the bucket) multiplies the shared vector.

The vector of a decision is a pure function of the spec and the named
features, so storing the spec's name and the named features with a decision
(`context_snapshot`) stores the exact vector the policy used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast, overload

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]
Matrix = NDArray[np.float64]
Indices = NDArray[np.intp]

MAX_BITS = 16
# Buckets of names seen but not declared are remembered up to this many per namespace (then recomputed):
# enough for every real feature, bounded against a client that sends a new name with every request.
_REMEMBERED = 65536


def feature_hash(name: str, *, seed: int = 0) -> int:
    """Return the stable 64-bit hash of a feature name: blake2b of its UTF-8 bytes, salted by `seed`."""
    digest = hashlib.blake2b(name.encode(), digest_size=8, salt=seed.to_bytes(16, "little")).digest()
    return int.from_bytes(digest, "little")


class Namespace:
    """The positions of one namespace's feature names: hashed to `2**bits` buckets, or by declaration."""

    def __init__(self, label: str, names: tuple[str, ...], *, bits: int | None, seed: int) -> None:
        self.label = label
        self.bits = bits
        self.seed = seed
        self.width = len(names) if bits is None else 1 << bits
        self._mask = 0 if bits is None else (1 << bits) - 1
        # Name -> position of the declared names and, when hashed, of the names seen since.
        self.known = {name: self._bucket(name, i) for i, name in enumerate(names)}
        self._declared = len(self.known)
        # The positions of the last sequence of names asked for: contexts come with the same names in the same order.
        self._last: tuple[tuple[str, ...], Indices] | None = None

    def _bucket(self, name: str, declared_position: int) -> int:
        if self.bits is None:
            return declared_position
        return feature_hash(name, seed=self.seed) & self._mask

    def index(self, name: str) -> int:
        """Return the position of `name`; raise KeyError for an unknown name of a declared namespace."""
        position = self.known.get(name)
        if position is not None:
            return position
        if self.bits is None:
            raise KeyError(f"unknown {self.label} feature {name!r}")
        position = self._bucket(name, -1)
        if len(self.known) < self._declared + _REMEMBERED:
            self.known[name] = position  # one dict write; racing writers store the same value
        return position

    def positions(self, names: Iterable[str]) -> Indices:
        """Return `indices(names)` as an array, remembering the last sequence of names."""
        keys = tuple(names)
        last = self._last
        if last is not None and last[0] == keys:
            return last[1]
        positions = np.array(self.indices(keys), dtype=np.intp)
        positions.flags.writeable = False
        self._last = (keys, positions)
        return positions

    def indices(self, names: Iterable[str]) -> list[int]:
        """Return the position of every name, in order."""
        index = self.known
        try:
            return [index[name] for name in names]
        except KeyError:
            return [self.index(name) for name in names]


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """The fixed layout of feature vectors; its `name` is stored with every decision.

    Change the name whenever a stored vector would read differently: the
    bits, the seed, the declared names of a declared namespace, the crosses,
    or `normalize`. Adding a declared name to a hashed namespace changes no
    vector (the name already had its bucket).
    """

    name: str
    shared: tuple[str, ...]
    action: tuple[str, ...]
    action_cross: tuple[str, ...] = ()
    # Scale every candidate vector to unit length, so an untrained optimistic policy
    # does not favour the candidates that merely have more or larger features.
    normalize: bool = False
    # Hash the names of a namespace into 2**bits buckets (see the module docstring); None: declared positions.
    shared_bits: int | None = None
    action_bits: int | None = None
    seed: int = 0
    _shared: Namespace = field(init=False, repr=False, compare=False)
    _action: Namespace = field(init=False, repr=False, compare=False)
    _cross_columns: Indices = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for label, names in (("shared", self.shared), ("action", self.action)):
            if len(set(names)) != len(names):
                raise ValueError(f"{label} feature names must be unique")
        for label, bits in (("shared_bits", self.shared_bits), ("action_bits", self.action_bits)):
            if bits is not None and not 0 <= bits <= MAX_BITS:
                raise ValueError(f"{label} must be within [0, {MAX_BITS}]")
        if not 0 <= self.seed < 2**64:
            raise ValueError("seed must be within [0, 2**64)")
        unknown = set(self.action_cross) - set(self.action)
        if unknown:
            raise ValueError(f"action_cross names must be action features: {sorted(unknown)}")
        shared = Namespace("shared", self.shared, bits=self.shared_bits, seed=self.seed)
        action = Namespace("action", self.action, bits=self.action_bits, seed=self.seed)
        cross_columns = action.indices(self.action_cross)
        if len(set(cross_columns)) != len(cross_columns):
            raise ValueError("action_cross names must land in distinct action buckets; change seed or action_bits")
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_action", action)
        object.__setattr__(self, "_cross_columns", np.array(cross_columns, dtype=np.intp))

    @property
    def shared_width(self) -> int:
        return self._shared.width

    @property
    def action_width(self) -> int:
        return self._action.width

    @property
    def cross_columns(self) -> Indices:
        """The action positions whose values multiply the shared vector, one per crossed block."""
        return self._cross_columns

    @property
    def dim(self) -> int:
        return self.shared_width + self.action_width + len(self.action_cross) * self.shared_width

    def shared_index(self, name: str) -> int:
        return self._shared.index(name)

    def action_index(self, name: str) -> int:
        return self._action.index(name)

    def collisions(self) -> list[tuple[str, ...]]:
        """Return the groups of declared names of one namespace that share a position (none when declared)."""
        groups: list[tuple[str, ...]] = []
        for namespace, names in ((self._shared, self.shared), (self._action, self.action)):
            buckets: dict[int, list[str]] = {}
            for name in names:
                buckets.setdefault(namespace.index(name), []).append(name)
            groups += [tuple(group) for group in buckets.values() if len(group) > 1]
        return groups

    def shared_vector(self, shared: Mapping[str, float]) -> Vector:
        if not shared:
            return np.zeros(self.shared_width)
        # bincount with weights counts in float64.
        return cast(
            Vector,
            np.bincount(
                self._shared.positions(shared),
                weights=np.fromiter(shared.values(), np.float64, len(shared)),
                minlength=self.shared_width,
            ),
        )

    def action_matrix(self, actions: Sequence[Mapping[str, float]]) -> Matrix:
        """Return one row of action values per candidate (values sharing a bucket add up)."""
        return _rows(self._action, actions)

    def shared_matrix(self, contexts: Sequence[Mapping[str, float]]) -> Matrix:
        """Return one shared vector per context, as rows (the learner builds a batch's at once)."""
        return _rows(self._shared, contexts)

    def matrix(self, shared: Mapping[str, float], actions: Sequence[Mapping[str, float]]) -> Matrix:
        """Return one full row per candidate, in the order given: the reference layout."""
        s = self.shared_vector(shared)
        a = self.action_matrix(actions)
        k = len(actions)
        cross = (a[:, self._cross_columns][:, :, None] * s[None, None, :]).reshape(k, -1)
        out = np.hstack([np.broadcast_to(s, (k, s.size)), a, cross])
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0.0, norms, 1.0)
        return out

    def row(self, shared: Mapping[str, float], action: Mapping[str, float]) -> Vector:
        row: Vector = self.matrix(shared, [action])[0]
        return row


def collision_free_seed(spec: FeatureSpec, *, start: int = 0, tries: int = 100_000) -> int:
    """Return the first seed from `start` under which no two declared names of `spec` share a bucket."""
    for seed in range(start, start + tries):
        candidate = FeatureSpec(
            name=spec.name,
            shared=spec.shared,
            action=spec.action,
            shared_bits=spec.shared_bits,
            action_bits=spec.action_bits,
            seed=seed,
        )
        if not candidate.collisions():
            return seed
    raise ValueError(f"no collision-free seed in [{start}, {start + tries}); use more bits")


class CandidateSet(Sequence[Mapping[str, float]]):
    """Candidates featurized once for one `FeatureSpec`: their named features and their action vectors.

    It is the sequence of the candidates' feature mappings, so whatever reads
    named features (Vowpal Wabbit, the remote scorer, the decision log) takes
    it unchanged; the linear policies read its vectors instead of featurizing
    the mappings again. Build one per decision and hand the same set to the
    live policy and every shadow. `action` must be `spec.action_matrix(features)`
    (pass it when the rows were kept from earlier decisions); the arrays are
    read-only.
    """

    __slots__ = ("_features", "_memo", "action", "action_sq", "columns", "cross", "cross_sq1", "spec", "z")

    def __init__(
        self, spec: FeatureSpec, features: Sequence[Mapping[str, float]], *, action: Matrix | None = None
    ) -> None:
        if action is None:
            action = spec.action_matrix(features)
        elif action.shape != (len(features), spec.action_width):
            raise ValueError(f"action rows have shape {action.shape}, expected {(len(features), spec.action_width)}")
        self.spec = spec
        self._features = features
        self.action = action
        self.cross: Matrix = action[:, spec.cross_columns]
        # A row's squared norm is |a|^2 + (1 + |cross|^2) |s|^2: the parts of it known before the context.
        self.action_sq: Vector = np.vecdot(action, action)
        self.cross_sq1: Vector = np.vecdot(self.cross, self.cross) + 1.0
        # Only the action positions some candidate uses take part in scoring: a few of the hashed width.
        self.columns: Indices = np.flatnonzero(action.any(axis=0))
        self.z: Matrix = np.hstack([action[:, self.columns], self.cross])
        for array in (self.action, self.cross, self.action_sq, self.cross_sq1, self.columns, self.z):
            array.flags.writeable = False
        self._memo: tuple[object, object, object] | None = None

    def memo(self, owner: object, key: object) -> object | None:
        """Return what `owner` remembered for `key` (by identity) on this set, if anything."""
        memo = self._memo
        if memo is not None and memo[0] is owner and memo[1] is key:
            return memo[2]
        return None

    def remember(self, owner: object, key: object, value: object) -> None:
        """Remember one value per set (the last one), so the live policy and its shadows share a computation."""
        self._memo = (owner, key, value)

    def __len__(self) -> int:
        return len(self._features)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, float]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, float]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, float] | Sequence[Mapping[str, float]]:
        return self._features[index]

    def __iter__(self) -> Iterator[Mapping[str, float]]:
        return iter(self._features)


def _rows(namespace: Namespace, maps: Sequence[Mapping[str, float]]) -> Matrix:
    """Return one row of `namespace` values per mapping (values sharing a bucket add up)."""
    # One bincount over flat positions for all rows: far cheaper than a numpy call per row.
    k, width = len(maps), namespace.width
    known = namespace.known
    try:
        flat = [known[name] + row * width for row, features in enumerate(maps) for name in features]
    except KeyError:
        index = namespace.index
        flat = [index(name) + row * width for row, features in enumerate(maps) for name in features]
    if not flat:
        return np.zeros((k, width))
    values = [value for features in maps for value in features.values()]
    out = np.bincount(np.array(flat, dtype=np.intp), weights=values, minlength=k * width)
    return cast(Matrix, out.reshape(k, width))
