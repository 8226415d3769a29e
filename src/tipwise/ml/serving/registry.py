"""The set of policies in use: one live policy that decides, shadows that are logged only."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from tipwise.ml.serving.features import FeatureSpec
from tipwise.ml.serving.policies import (
    Decision,
    Features,
    Policy,
    PolicySpec,
    build_policy,
    exact_copy,
    share_readout,
)


def policy_version(spec: PolicySpec) -> str:
    """Return a short, stable fingerprint of a policy spec, e.g. `linucb@1a2b3c4d5e6f`."""
    data = asdict(spec)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    return f"{spec.kind}@{digest}"


_generators = threading.local()


def policy_rng(seed: int, position: int) -> np.random.Generator:
    """Return the generator the policy at `position` (0: the live one) draws from for the decision `seed`.

    The same (seed, position) always gives the same stream, and different positions
    independent ones. `np.random.default_rng([seed, position])` does that through a
    `SeedSequence`, which costs ~15 us per generator, three times per decision; here the
    PCG64 state and increment come from a BLAKE2b digest of (seed, position) and are set
    on a generator kept per thread and position, ~3 us. The generator is valid until the
    same thread asks for the same position again: a pick must not keep it.
    """
    kept: list[np.random.Generator] | None = getattr(_generators, "kept", None)
    if kept is None:
        kept = _generators.kept = []
    while len(kept) <= position:
        kept.append(np.random.Generator(np.random.PCG64(0)))
    generator = kept[position]
    digest = hashlib.blake2b(b"%d:%d" % (seed, position), digest_size=32).digest()
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        # PCG64 needs an odd increment.
        "state": {"state": int.from_bytes(digest[:16], "little"), "inc": int.from_bytes(digest[16:], "little") | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return generator


@dataclass(frozen=True, kw_only=True)
class PolicyChoice:
    """One policy's answer for one decision."""

    policy: str
    policy_version: str
    model_version: int
    decision: Decision


@dataclass(frozen=True, kw_only=True)
class RankedDecision:
    live: PolicyChoice
    shadows: tuple[PolicyChoice, ...]


class Scorer(Protocol):
    """Scores a decision: in process (`PolicyRegistry`) or in a `tipwise ml-serve` process."""

    def decide(
        self, *, context: Features, candidates: Sequence[Features], seed: int, explore: bool = True
    ) -> RankedDecision: ...


def copy_policy(policy: Policy, spec: PolicySpec, features: FeatureSpec, *, state: bytes | None = None) -> Policy:
    """Return an independent copy of `policy` (same spec, same learned state), as a fresh policy loaded with its state.

    `state` is `policy.state_bytes()` when the caller has it already. A linear model derived from
    its statistics alone is copied array by array (`exact_copy`: the same numbers a load derives).
    """
    copied = exact_copy(policy)
    if copied is not None:
        return copied
    clone = build_policy(spec, features=features)
    clone.load_state(policy.state_bytes() if state is None else state)
    return clone


@dataclass(frozen=True)
class _Published:
    model: Policy
    learned_until: datetime | None


class PolicyRegistry:
    """Serves decisions from the current model of every named policy.

    The learner trains its own copies and `publish`es new models here; a
    published model is never mutated again, so a pick in flight on another
    thread always sees one consistent model. `on_first_use` is told, once per
    published live model, the time of the newest reaction that model learned
    from: the feedback-to-decision latency.
    """

    def __init__(
        self,
        *,
        specs: Mapping[str, PolicySpec],
        live: str,
        features: FeatureSpec,
        on_first_use: Callable[[datetime], None] | None = None,
    ) -> None:
        if live not in specs:
            raise ValueError(f"live policy {live!r} is not among the configured policies {sorted(specs)}")
        self.features = features
        self.specs = dict(specs)
        self.live = live
        self.versions_of_specs = {name: policy_version(spec) for name, spec in specs.items()}
        self._published = {
            name: _Published(build_policy(spec, features=features), None) for name, spec in specs.items()
        }
        for entry in self._published.values():
            share_readout(entry.model, (other.model for other in self._published.values() if other is not entry))
        self._unused: _Published | None = None
        self._on_first_use = on_first_use
        self._lock = threading.Lock()

    @property
    def shadow_names(self) -> tuple[str, ...]:
        return tuple(name for name in self.specs if name != self.live)

    def model(self, name: str) -> Policy:
        return self._published[name].model

    def versions(self) -> dict[str, int]:
        return {name: entry.model.version for name, entry in self._published.items()}

    def publish(self, name: str, model: Policy, *, learned_until: datetime | None = None) -> None:
        """Swap in a new model for `name`; the caller must not mutate it afterwards."""
        entry = _Published(model, learned_until)
        # Before it is visible: a pick must find the model as it will stay.
        share_readout(model, (published.model for other, published in self._published.items() if other != name))
        with self._lock:
            self._published = {**self._published, name: entry}
            if name == self.live and learned_until is not None:
                self._unused = entry

    def decide(
        self, *, context: Features, candidates: Sequence[Features], seed: int, explore: bool = True
    ) -> RankedDecision:
        """Let the live policy pick and every shadow answer on the same input, all from `seed`."""
        published = self._published
        live_entry = published[self.live]
        live = self._choice(self.live, live_entry.model, context, candidates, policy_rng(seed, 0), explore=explore)
        shadows = tuple(
            self._choice(name, published[name].model, context, candidates, policy_rng(seed, position))
            for position, name in enumerate(self.shadow_names, start=1)
        )
        if self._unused is live_entry and self._on_first_use is not None:
            with self._lock:
                first = self._unused is live_entry
                self._unused = None
            if first and live_entry.learned_until is not None:
                self._on_first_use(live_entry.learned_until)
        return RankedDecision(live=live, shadows=shadows)

    def _choice(
        self,
        name: str,
        model: Policy,
        context: Features,
        candidates: Sequence[Features],
        rng: np.random.Generator,
        *,
        explore: bool = True,
    ) -> PolicyChoice:
        return PolicyChoice(
            policy=name,
            policy_version=self.versions_of_specs[name],
            model_version=model.version,
            decision=model.pick(context=context, candidates=candidates, rng=rng, explore=explore),
        )
