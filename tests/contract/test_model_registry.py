"""The model registry port: one suite, run against the file registry and the MLflow adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tipwise.ml.serving import FileModelRegistry, MlflowSettings, ModelRegistry, ModelSnapshot, open_model_registry

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STATE = bytes(range(256)) * 4  # every byte value, NUL and 0xff included


def _snapshot(version: int, *, name: str = "linucb", state: bytes = STATE) -> ModelSnapshot:
    return ModelSnapshot(
        name=name,
        version=version,
        spec={"kind": name, "alpha": 1.5, "ridge": 1.0},
        feature_spec="tipwise.tips/v2",
        reward_map={
            "version": "2026-11-v1",
            "values": {"done": 1.0, "snooze": 0.3, "dismiss": 0.0, "not_for_me": -0.5},
            "default": 0.0,
            "wait_seconds": 86400.0,
        },
        state=state,
        created_at=T0 + timedelta(minutes=version),
        learned_until=T0 - timedelta(minutes=1),
        trained_from=datetime(2026, 2, 1, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1))),
        trained_until=T0 - timedelta(seconds=30),
        metrics={"rewards": float(version), "mean_reward": 0.4375},
    )


@pytest.fixture(params=["files", "mlflow"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    settings: MlflowSettings | None = request.getfixturevalue("mlflow_settings") if request.param == "mlflow" else None
    return open_model_registry(kind=request.param, models_dir=tmp_path / "models", mlflow=settings)


@pytest.fixture
def same_store(request: pytest.FixtureRequest, registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """A second registry on the same store, as another process (ml-serve beside the learner) opens it."""
    if isinstance(registry, FileModelRegistry):
        return FileModelRegistry(registry.root)
    settings: MlflowSettings = request.getfixturevalue("mlflow_settings")
    return open_model_registry(kind="mlflow", models_dir=tmp_path / "unused", mlflow=settings)


class TestModelRegistryContract:
    def test_an_empty_registry_has_no_snapshot(self, registry: ModelRegistry) -> None:
        assert registry.latest("linucb") is None
        assert registry.latest_version("linucb") is None

    def test_the_newest_published_snapshot_comes_back_whole(self, registry: ModelRegistry) -> None:
        registry.publish(_snapshot(3, state=b"three"))
        published = registry.publish(_snapshot(7))
        assert published == _snapshot(7)
        latest = registry.latest("linucb")
        assert latest == _snapshot(7)
        assert latest is not None
        assert latest.state == STATE
        assert latest.trained_from is not None
        assert latest.trained_from.utcoffset() == timedelta(hours=1)
        assert registry.latest_version("linucb") == 7

    def test_a_snapshot_without_training_range_or_metrics_comes_back_without_them(
        self, registry: ModelRegistry
    ) -> None:
        bare = ModelSnapshot(
            name="random",
            version=0,
            spec={"kind": "uniform"},
            feature_spec="tipwise.tips/v2",
            reward_map={"version": "v1"},
            state=b"",
            created_at=T0,
        )
        registry.publish(bare)
        assert registry.latest("random") == bare
        assert registry.latest_version("random") == 0

    def test_the_latest_is_the_last_published_even_with_a_lower_version(self, registry: ModelRegistry) -> None:
        # A rebuild after an erasure learned fewer rewards than the snapshot before it.
        registry.publish(_snapshot(40))
        registry.publish(_snapshot(38, state=b"rebuilt"))
        assert registry.latest_version("linucb") == 38
        latest = registry.latest("linucb")
        assert latest is not None
        assert (latest.version, latest.state) == (38, b"rebuilt")

    def test_policies_keep_their_own_snapshots(self, registry: ModelRegistry) -> None:
        registry.publish(_snapshot(5, name="linucb", state=b"lin"))
        registry.publish(_snapshot(9, name="epsilon_greedy", state=b"eps"))
        assert registry.latest_version("linucb") == 5
        assert registry.latest_version("epsilon_greedy") == 9
        assert registry.latest_version("random") is None
        eps = registry.latest("epsilon_greedy")
        assert eps is not None
        assert eps.state == b"eps"

    def test_another_registry_on_the_same_store_sees_what_was_published(
        self, registry: ModelRegistry, same_store: ModelRegistry
    ) -> None:
        assert same_store.latest_version("linucb") is None
        registry.publish(_snapshot(2))
        assert same_store.latest_version("linucb") == 2
        assert same_store.latest("linucb") == _snapshot(2)
        same_store.publish(_snapshot(3))
        assert registry.latest("linucb") == _snapshot(3)
