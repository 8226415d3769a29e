"""Model snapshots and the registry port that stores them.

A snapshot is everything needed to serve one policy and to know where it came
from: the policy spec, the feature spec, the reward map it was trained with,
the training range (the times of the oldest and newest reward learned), its
metrics, and the learned state. The learner publishes snapshots; `tipwise
ml-serve` loads the newest and hot-reloads newer ones.

Two adapters implement the port: `FileModelRegistry` (files under the data
dir, the default) and `MlflowModelRegistry` in `mlflow_registry` (the optional
`mlflow` extra, imported only when configured).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from tipwise.ml.serving.settings import MlflowSettings

VERSION_DIGITS = 12


@dataclass(frozen=True, kw_only=True)
class ModelSnapshot:
    name: str
    version: int
    spec: dict[str, Any]
    feature_spec: str
    reward_map: dict[str, Any]
    state: bytes = field(repr=False)
    created_at: datetime
    # The newest reaction learned since this process started: serving measures feedback-to-decision from it.
    learned_until: datetime | None = None
    # The training range: the times of the oldest and newest reward (reaction or default) in the model.
    trained_from: datetime | None = None
    trained_until: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "spec": self.spec,
            "feature_spec": self.feature_spec,
            "reward_map": self.reward_map,
            "created_at": self.created_at.isoformat(),
            "learned_until": _iso(self.learned_until),
            "trained_from": _iso(self.trained_from),
            "trained_until": _iso(self.trained_until),
            "metrics": self.metrics,
        }

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], *, state: bytes) -> ModelSnapshot:
        """Rebuild a snapshot from its `manifest()` and its state bytes."""
        return cls(
            name=manifest["name"],
            version=manifest["version"],
            spec=manifest["spec"],
            feature_spec=manifest["feature_spec"],
            reward_map=manifest["reward_map"],
            state=state,
            created_at=datetime.fromisoformat(manifest["created_at"]),
            learned_until=_from_iso(manifest.get("learned_until")),
            # Snapshots written before the training range was recorded have none.
            trained_from=_from_iso(manifest.get("trained_from")),
            trained_until=_from_iso(manifest.get("trained_until")),
            metrics=manifest["metrics"],
        )


class ModelRegistry(Protocol):
    """Where snapshots live: files under the data dir by default, or MLflow.

    "Latest" is the snapshot published last, even when its version is lower
    than an earlier one's (a rebuild after an erasure learned fewer rewards).
    """

    def publish(self, snapshot: ModelSnapshot) -> ModelSnapshot:
        """Store `snapshot` and make it the latest of its policy; return it."""
        ...

    def latest(self, name: str) -> ModelSnapshot | None:
        """Return the latest snapshot of policy `name`, or None when it has none."""
        ...

    def latest_version(self, name: str) -> int | None:
        """Return the version of the latest snapshot of `name` (cheap: serving polls it)."""
        ...

    def prepare(self) -> str:
        """Create what the registry needs before processes share it (`tipwise migrate`); say where it is."""
        ...


class FileModelRegistry:
    """Snapshots as files: `<root>/<name>/<version>.json` + `.state`, and a `LATEST` pointer.

    Every file is written to a temporary name and renamed into place, so a
    reader never sees a half-written snapshot, and `LATEST` moves only after
    the snapshot it points to is complete.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        return f"files in {self.root}"

    def publish(self, snapshot: ModelSnapshot) -> ModelSnapshot:
        folder = self.root / snapshot.name
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{snapshot.version:0{VERSION_DIGITS}d}"
        _atomic_write(folder / f"{stem}.state", snapshot.state)
        _atomic_write(folder / f"{stem}.json", json.dumps(snapshot.manifest(), indent=2, sort_keys=True).encode())
        _atomic_write(folder / "LATEST", stem.encode())
        return snapshot

    def latest_version(self, name: str) -> int | None:
        pointer = self.root / name / "LATEST"
        try:
            return int(pointer.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def latest(self, name: str) -> ModelSnapshot | None:
        version = self.latest_version(name)
        if version is None:
            return None
        stem = self.root / name / f"{version:0{VERSION_DIGITS}d}"
        manifest = json.loads(stem.with_suffix(".json").read_text())
        return ModelSnapshot.from_manifest(manifest, state=stem.with_suffix(".state").read_bytes())


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def open_model_registry(
    *, kind: Literal["files", "mlflow"], models_dir: Path, mlflow: MlflowSettings | None = None
) -> ModelRegistry:
    """Return the configured model registry; ValueError when MLflow is chosen but unusable."""
    if kind == "files":
        return FileModelRegistry(models_dir)
    if mlflow is None or not mlflow.tracking_uri:
        raise ValueError("TIPWISE_MODEL_REGISTRY=mlflow needs TIPWISE_MLFLOW_TRACKING_URI")
    from tipwise.ml.serving.mlflow_registry import MlflowModelRegistry, mlflow_installed

    if not mlflow_installed():
        raise ValueError(
            "TIPWISE_MODEL_REGISTRY=mlflow needs the `mlflow` extra: pip install 'tipwise[mlflow]' "
            "(pinned: requirements/mlflow.lock)"
        )
    return MlflowModelRegistry(
        tracking_uri=mlflow.tracking_uri,
        registry_uri=mlflow.registry_uri,
        experiment=mlflow.experiment,
        model_prefix=mlflow.model_prefix,
        artifact_location=mlflow.artifact_location,
    )


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
