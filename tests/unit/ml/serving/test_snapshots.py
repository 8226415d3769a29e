"""The file model registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tipwise.ml.serving import FileModelRegistry, ModelSnapshot

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _snapshot(version: int, state: bytes = b"state") -> ModelSnapshot:
    return ModelSnapshot(
        name="linucb",
        version=version,
        spec={"kind": "linucb", "alpha": 1.0},
        feature_spec="tipwise.tips/v3",
        reward_map={"version": "v1", "values": {"done": 1.0}},
        state=state,
        created_at=T0,
        learned_until=T0,
        metrics={"rewards": float(version)},
    )


class TestFileModelRegistry:
    def test_an_empty_registry_has_no_snapshot(self, tmp_path: Path) -> None:
        registry = FileModelRegistry(tmp_path)
        assert registry.latest("linucb") is None
        assert registry.latest_version("linucb") is None

    def test_the_newest_published_snapshot_comes_back_whole(self, tmp_path: Path) -> None:
        registry = FileModelRegistry(tmp_path)
        registry.publish(_snapshot(3, b"three"))
        registry.publish(_snapshot(7, b"\x00seven\xff"))
        latest = registry.latest("linucb")
        assert latest == _snapshot(7, b"\x00seven\xff")
        assert registry.latest_version("linucb") == 7
        assert sorted(p.name for p in (tmp_path / "linucb").iterdir()) == [
            "000000000003.json",
            "000000000003.state",
            "000000000007.json",
            "000000000007.state",
            "LATEST",
        ]

    def test_no_temporary_files_are_left_behind(self, tmp_path: Path) -> None:
        registry = FileModelRegistry(tmp_path)
        registry.publish(_snapshot(1))
        assert not [p for p in (tmp_path / "linucb").iterdir() if p.name.startswith(".")]
