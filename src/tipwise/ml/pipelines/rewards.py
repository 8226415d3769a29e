"""The declared mapping from reactions to rewards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

REACTIONS = ("done", "snooze", "dismiss", "not_for_me")


def _default_values() -> Mapping[str, float]:
    return MappingProxyType({"done": 1.0, "snooze": 0.3, "dismiss": 0.0, "not_for_me": -0.5})


@dataclass(frozen=True, kw_only=True)
class RewardMap:
    """Rewards per reaction, the reward when no reaction comes within `wait`, and a version.

    Late reactions (after `wait` applied the default) are counted and logged
    but not learned from: the default reward already stands for that
    decision, and learning it twice would weight it double.
    """

    version: str = "2026-11-v1"
    values: Mapping[str, float] = field(default_factory=_default_values)
    default: float = 0.0
    wait: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if set(self.values) != set(REACTIONS):
            raise ValueError(f"reward map must cover exactly {REACTIONS}, got {sorted(self.values)}")
        if self.wait <= timedelta(0):
            raise ValueError("reward wait must be positive")

    def describe(self) -> dict[str, object]:
        """Return the map as stored with a model snapshot."""
        return {
            "version": self.version,
            "values": dict(self.values),
            "default": self.default,
            "wait_seconds": self.wait.total_seconds(),
        }

    def reward(self, reaction: str) -> float:
        """Return the reward for `reaction`; raises KeyError for an unknown reaction."""
        return self.values[reaction]
