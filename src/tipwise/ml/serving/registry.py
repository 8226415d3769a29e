"""The set of policies in use: one live policy that decides, shadows that are logged only."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tipwise.ml.serving.features import FeatureSpec
from tipwise.ml.serving.policies import Decision, Features, Policy, PolicySpec, build_policy


@dataclass(frozen=True, kw_only=True)
class PolicyChoice:
    """One policy's answer for one decision."""

    policy: str
    model_version: int
    decision: Decision


@dataclass(frozen=True, kw_only=True)
class RankedDecision:
    live: PolicyChoice
    shadows: tuple[PolicyChoice, ...]


def copy_policy(policy: Policy, spec: PolicySpec, features: FeatureSpec) -> Policy:
    """Return an independent copy of `policy` (same spec, same learned state)."""
    clone = build_policy(spec, features=features)
    clone.load_state(policy.state_bytes())
    return clone


class PolicyRegistry:
    """Serves decisions from the current model of every named policy.

    The learner trains its own copies and `publish`es new models here; a
    published model is never mutated again, so a pick in flight on another
    thread always sees one consistent model.
    """

    def __init__(self, *, specs: Mapping[str, PolicySpec], live: str, features: FeatureSpec) -> None:
        if live not in specs:
            raise ValueError(f"live policy {live!r} is not among the configured policies {sorted(specs)}")
        self.features = features
        self.specs = dict(specs)
        self.live = live
        self._models: dict[str, Policy] = {name: build_policy(spec, features=features) for name, spec in specs.items()}
        self._lock = threading.Lock()

    @property
    def shadow_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.specs if name != self.live)

    def model(self, name: str) -> Policy:
        return self._models[name]

    def versions(self) -> dict[str, int]:
        return {name: model.version for name, model in self._models.items()}

    def publish(self, name: str, model: Policy) -> None:
        """Swap in a new model for `name`; the caller must not mutate it afterwards."""
        with self._lock:
            self._models = {**self._models, name: model}

    def decide(
        self, *, context: Features, candidates: Sequence[Features], seed: int, explore: bool = True
    ) -> RankedDecision:
        """Let the live policy pick and every shadow answer on the same input, all from `seed`."""
        models = self._models
        live_model = models[self.live]
        live = PolicyChoice(
            policy=self.live,
            model_version=live_model.version,
            decision=live_model.pick(
                context=context, candidates=candidates, rng=np.random.default_rng(seed), explore=explore
            ),
        )
        shadows = tuple(
            PolicyChoice(
                policy=name,
                model_version=models[name].version,
                decision=models[name].pick(
                    context=context, candidates=candidates, rng=np.random.default_rng([seed, position]), explore=True
                ),
            )
            for position, name in enumerate(self.shadow_names, start=1)
        )
        return RankedDecision(live=live, shadows=shadows)
