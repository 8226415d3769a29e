"""Vowpal Wabbit's `--cb_explore_adf` behind Tipwise's `Policy` protocol.

Each decision becomes one multi-line ADF example: a `shared |s name:value ...`
line for the context and one `|a name:value ...` line per candidate; VW
learns the interactions of the two namespaces (`-q sa`) with `--cb_type mtr`
and explores by its own `--epsilon` or `--squarecb`. VW returns the
probability of every candidate; the pick is drawn from them with the
injected generator, so the logged propensity is exact and a seed replays.
A reward is learned as cost `-reward` on an example holding just the chosen
candidate, which is all a `LoggedReward` carries and all ADF needs.

VW normalizes its own updates and hashes names itself, so the feature
spec's `normalize` and bits are not applied here; its names only decide
which features are known (in a hashed namespace every name is).
"""

from __future__ import annotations

import io
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from vowpalwabbit import pyvw

from tipwise.ml.serving.features import FeatureSpec, Vector
from tipwise.ml.serving.policies import (
    Decision,
    Features,
    LoggedReward,
    VWCbAdfSpec,
    mix_with_uniform,
    require_candidates,
    sample_index,
)

# VW reads ' ' and '|' as separators and ':' as the value mark; '%' is escaped so the escape stays reversible.
_ESCAPES = str.maketrans({"%": "%25", ":": "%3A", "|": "%7C", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"})
# VW computes its probabilities in float32.
_PMF_TIE = 1e-6
_MIN_PROPENSITY = 1e-6


def vw_name(name: str) -> str:
    """Return `name` escaped so that VW reads it back as one feature name."""
    return name.translate(_ESCAPES)


def vw_features(features: Mapping[str, float], tokens: Mapping[str, str], label: str, *, hashed: bool = False) -> str:
    """Return `name:value` tokens of the non-zero features.

    A feature the spec lacks raises KeyError, unless the spec hashes that
    namespace (`hashed`): then, as in the linear policies, it is just another
    feature (VW hashes every name itself).
    """
    parts = []
    for name, value in features.items():
        token = tokens.get(name)
        if token is None:
            if not hashed:
                raise KeyError(f"unknown {label} feature {name!r}")
            token = vw_name(name)
        if value:
            parts.append(f"{token}:{value:.9g}")
    return " ".join(parts)


class VWPolicy:
    kind: ClassVar[str] = "vw_cb_adf"

    def __init__(self, spec: VWCbAdfSpec, *, features: FeatureSpec) -> None:
        self.spec = spec
        self.features = features
        self._shared_tokens = {name: vw_name(name) for name in features.shared}
        self._action_tokens = {name: vw_name(name) for name in features.action}
        # A workspace is not safe to share between threads; picks may come from several.
        self._lock = threading.Lock()
        self._version = 0
        self._vw = self._workspace()

    @property
    def version(self) -> int:
        return self._version

    def arguments(self) -> list[str]:
        """Return VW's command line for this spec."""
        spec = self.spec
        exploration = ["--squarecb"] if spec.exploration == "squarecb" else ["--epsilon", repr(spec.epsilon)]
        return [
            "--cb_explore_adf",
            "--quiet",
            "-q",
            "sa",
            "--cb_type",
            "mtr",
            *exploration,
            "-l",
            repr(spec.learning_rate),
            "--random_seed",
            str(spec.seed),
        ]

    def _workspace(self, model: Path | None = None) -> pyvw.Workspace:
        extra = [] if model is None else ["-i", str(model)]
        return pyvw.Workspace(arg_list=[*self.arguments(), *extra])

    def _shared_line(self, context: Features) -> str:
        hashed = self.features.shared_bits is not None
        return "shared |s " + vw_features(context, self._shared_tokens, "shared", hashed=hashed)

    def _action_line(self, action: Features) -> str:
        hashed = self.features.action_bits is not None
        return "|a " + vw_features(action, self._action_tokens, "action", hashed=hashed)

    def pick(
        self, *, context: Features, candidates: Sequence[Features], rng: np.random.Generator, explore: bool = True
    ) -> Decision:
        require_candidates(candidates)
        lines = [self._shared_line(context), *(self._action_line(candidate) for candidate in candidates)]
        with self._lock:
            pmf: Vector = np.asarray(self._vw.predict(lines), dtype=np.float64)
        pmf = pmf / pmf.sum()
        if explore:
            probabilities = mix_with_uniform(pmf, self.spec.floor)
        else:
            best = (pmf >= pmf.max() - _PMF_TIE).astype(np.float64)
            probabilities = best / best.sum()
        # VW has no width to offer; its confidence is the probability it gives its own favourite.
        return Decision(
            index=sample_index(probabilities, rng),
            probabilities=tuple(probabilities.tolist()),
            confidence=float(min(pmf.max(), 1.0)),
            explored=explore,
        )

    def learn(self, batch: Sequence[LoggedReward]) -> None:
        for example in batch:
            # VW rejects a zero probability; a logged pick always had a positive one, this guards odd logs.
            propensity = min(max(example.propensity, _MIN_PROPENSITY), 1.0)
            label = f"0:{-example.reward:.9g}:{propensity:.9g}"
            lines = [self._shared_line(example.shared), f"{label} {self._action_line(example.action)}"]
            with self._lock:
                self._vw.learn(lines)
                self._version += 1

    def spec_dict(self) -> dict[str, Any]:
        return asdict(self.spec)

    def state_bytes(self) -> bytes:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.vw"
            with self._lock:
                self._vw.save(str(path))
                version = self._version
            model = path.read_bytes()
        buffer = io.BytesIO()
        np.savez(buffer, vw=np.frombuffer(model, dtype=np.uint8), version=np.array(version))
        return buffer.getvalue()

    def load_state(self, data: bytes) -> None:
        try:
            with np.load(io.BytesIO(data)) as arrays:
                model = arrays["vw"].tobytes()
                version = int(arrays["version"])
        except (ValueError, OSError, KeyError) as exc:
            raise ValueError(f"not a Vowpal Wabbit policy state: {exc}") from exc
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.vw"
            path.write_bytes(model)
            workspace = self._workspace(path)
        with self._lock:
            self._vw = workspace
            self._version = version
