"""Model snapshots and the registry port that stores them.

A snapshot is everything needed to serve one policy and to know where it came
from: the policy spec, the feature spec, the reward map it was trained with,
how far the training went, and the learned state. The learner publishes
snapshots; `tipwise ml-serve` loads the newest and hot-reloads newer ones.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

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
    learned_until: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "spec": self.spec,
            "feature_spec": self.feature_spec,
            "reward_map": self.reward_map,
            "created_at": self.created_at.isoformat(),
            "learned_until": self.learned_until.isoformat() if self.learned_until else None,
            "metrics": self.metrics,
        }


class ModelRegistry(Protocol):
    """Where snapshots live: files under the data dir by default."""

    def publish(self, snapshot: ModelSnapshot) -> ModelSnapshot: ...

    def latest(self, name: str) -> ModelSnapshot | None: ...

    def latest_version(self, name: str) -> int | None: ...


class FileModelRegistry:
    """Snapshots as files: `<root>/<name>/<version>.json` + `.state`, and a `LATEST` pointer.

    Every file is written to a temporary name and renamed into place, so a
    reader never sees a half-written snapshot, and `LATEST` moves only after
    the snapshot it points to is complete.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

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
        return ModelSnapshot(
            name=manifest["name"],
            version=manifest["version"],
            spec=manifest["spec"],
            feature_spec=manifest["feature_spec"],
            reward_map=manifest["reward_map"],
            state=stem.with_suffix(".state").read_bytes(),
            created_at=datetime.fromisoformat(manifest["created_at"]),
            learned_until=datetime.fromisoformat(manifest["learned_until"]) if manifest["learned_until"] else None,
            metrics=manifest["metrics"],
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
