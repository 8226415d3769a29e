"""Turn named features into the vectors the linear policies score.

A context is a mapping of shared feature names to values (about the person
and the moment); each candidate has its own mapping (about the tip). The
vector of a candidate is `[shared, action, action_cross (x) shared]`: the
crossed block lets one linear model learn, say, that movement tips work in
the morning but not at night.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]
Matrix = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """The fixed layout of feature vectors; its `name` is stored with every decision."""

    name: str
    shared: tuple[str, ...]
    action: tuple[str, ...]
    action_cross: tuple[str, ...] = ()
    # Scale every candidate vector to unit length, so an untrained optimistic policy
    # does not favour the candidates that merely have more or larger features.
    normalize: bool = False
    _shared_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _action_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _cross_rows: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for label, names in (("shared", self.shared), ("action", self.action)):
            if len(set(names)) != len(names):
                raise ValueError(f"{label} feature names must be unique")
        unknown = set(self.action_cross) - set(self.action)
        if unknown:
            raise ValueError(f"action_cross names must be action features: {sorted(unknown)}")
        object.__setattr__(self, "_shared_index", {n: i for i, n in enumerate(self.shared)})
        object.__setattr__(self, "_action_index", {n: i for i, n in enumerate(self.action)})
        object.__setattr__(self, "_cross_rows", tuple(self.action.index(n) for n in self.action_cross))

    @property
    def dim(self) -> int:
        return len(self.shared) + len(self.action) + len(self.action_cross) * len(self.shared)

    def shared_vector(self, shared: Mapping[str, float]) -> Vector:
        return _dense(shared, self._shared_index, len(self.shared), "shared")

    def action_matrix(self, actions: Sequence[Mapping[str, float]]) -> Matrix:
        # One fancy-indexed assignment for all rows: far cheaper than a numpy call per row.
        index = self._action_index
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        try:
            for row, features in enumerate(actions):
                for name, value in features.items():
                    cols.append(index[name])
                    rows.append(row)
                    values.append(value)
        except KeyError as exc:
            raise KeyError(f"unknown action feature {exc.args[0]!r}") from None
        out = np.zeros((len(actions), len(self.action)))
        out[rows, cols] = values
        return out

    def matrix(self, shared: Mapping[str, float], actions: Sequence[Mapping[str, float]]) -> Matrix:
        """Return one row per candidate, in the order given."""
        s = self.shared_vector(shared)
        a = self.action_matrix(actions)
        k = len(actions)
        cross = (a[:, self._cross_rows][:, :, None] * s[None, None, :]).reshape(k, -1)
        out = np.hstack([np.broadcast_to(s, (k, s.size)), a, cross])
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.where(norms > 0.0, norms, 1.0)
        return out

    def row(self, shared: Mapping[str, float], action: Mapping[str, float]) -> Vector:
        row: Vector = self.matrix(shared, [action])[0]
        return row


def _dense(values: Mapping[str, float], index: Mapping[str, int], width: int, label: str) -> Vector:
    out = np.zeros(width)
    for name, value in values.items():
        position = index.get(name)
        if position is None:
            raise KeyError(f"unknown {label} feature {name!r}")
        out[position] = value
    return out
