"""The MLflow model registry as MLflow users see it, and the learner and ml-serve working through it."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from tests.conftest import ContainerFactory
from tests.contract.test_model_registry import STATE, _snapshot
from tests.support.consents import registered
from tests.support.decisions import decide_and_react
from tipwise.cli import app as cli
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import ConfigurationError
from tipwise.kernel.metrics import Metrics
from tipwise.ml.pipelines import LearnerSettings
from tipwise.ml.serving import MlflowSettings, PolicyRegistry, open_model_registry
from tipwise.ml.serving.app import create_scoring_app
from tipwise.ml.serving.mlflow_registry import MlflowModelRegistry
from tipwise.recommender import FEATURE_SPEC

REPO = Path(__file__).parents[3]


def _mlflow(settings: MlflowSettings) -> MlflowModelRegistry:
    registry = open_model_registry(kind="mlflow", models_dir=Path("unused"), mlflow=settings)
    assert isinstance(registry, MlflowModelRegistry)
    return registry


class TestMlflowMapping:
    def test_each_snapshot_is_a_version_of_the_policys_registered_model(
        self, mlflow_settings: MlflowSettings, tmp_path: Path
    ) -> None:
        registry = _mlflow(mlflow_settings)
        registry.publish(_snapshot(3, state=b"three"))
        registry.publish(_snapshot(7))
        client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
        name = f"{mlflow_settings.model_prefix}linucb"

        versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
        assert [(str(v.version), v.tags["tipwise.snapshot_version"]) for v in versions] == [("1", "3"), ("2", "7")]
        assert {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()} == {
            "live": "2"
        }

        live = client.get_model_version_by_alias(name, "live")
        assert live.tags["tipwise.feature_spec"] == "tipwise.tips/v2"
        assert live.tags["tipwise.trained_from"] == "2026-02-01T08:30:15.123456+01:00"
        run_id = live.run_id
        assert run_id is not None
        run = client.get_run(run_id)
        experiment = client.get_experiment_by_name(mlflow_settings.experiment)
        assert experiment is not None
        assert run.info.experiment_id == experiment.experiment_id
        assert run.info.status == "FINISHED"
        assert run.data.metrics == {"rewards": 7.0, "mean_reward": 0.4375}
        assert run.data.params == {
            "spec.kind": "linucb",
            "spec.alpha": "1.5",
            "spec.ridge": "1.0",
            "feature_spec": "tipwise.tips/v2",
            "reward_map.version": "2026-11-v1",
            "reward_map.values.done": "1.0",
            "reward_map.values.snooze": "0.3",
            "reward_map.values.dismiss": "0.0",
            "reward_map.values.not_for_me": "-0.5",
            "reward_map.default": "0.0",
            "reward_map.wait_seconds": "86400.0",
            "training.from": "2026-02-01T08:30:15.123456+01:00",
            "training.until": "2026-03-02T11:59:30+00:00",
        }
        artifacts = sorted(a.path for a in client.list_artifacts(run_id, "snapshot"))
        assert artifacts == ["snapshot/snapshot.json", "snapshot/state.bin"]
        downloaded = client.download_artifacts(run_id, "snapshot/state.bin", str(tmp_path))
        assert Path(downloaded).read_bytes() == STATE

    def test_a_version_without_the_live_alias_is_not_served(self, mlflow_settings: MlflowSettings) -> None:
        registry = _mlflow(mlflow_settings)
        registry.publish(_snapshot(3))
        client = MlflowClient(tracking_uri=mlflow_settings.tracking_uri)
        # A publish that stopped before moving the alias leaves a version nobody serves yet.
        client.delete_registered_model_alias(f"{mlflow_settings.model_prefix}linucb", "live")
        assert registry.latest_version("linucb") is None
        assert registry.latest("linucb") is None


class TestConfiguration:
    def test_mlflow_without_a_tracking_uri_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="TIPWISE_MLFLOW_TRACKING_URI"):
            open_model_registry(kind="mlflow", models_dir=tmp_path, mlflow=MlflowSettings(tracking_uri=None))

    def test_the_app_refuses_to_start_on_an_unusable_mlflow_configuration(
        self, make_container: ContainerFactory
    ) -> None:
        with pytest.raises(ConfigurationError, match="TIPWISE_MLFLOW_TRACKING_URI"):
            make_container(settings={"model_registry": "mlflow"}, mlflow_settings=MlflowSettings(tracking_uri=None))

    def test_only_the_adapters_first_use_imports_mlflow_and_the_default_needs_none(self, tmp_path: Path) -> None:
        # A fresh interpreter: nothing imported mlflow yet.
        script = f"""
import sys
from pathlib import Path
import tipwise.app, tipwise.bootstrap, tipwise.cli
from tipwise.ml.serving import MlflowSettings, open_model_registry
files = open_model_registry(kind="files", models_dir=Path({str(tmp_path)!r}), mlflow=MlflowSettings())
store = MlflowSettings(tracking_uri="sqlite:///" + {(tmp_path / "m.db").as_posix()!r})
adapter = open_model_registry(kind="mlflow", models_dir=Path("."), mlflow=store)
print(type(files).__name__, type(adapter).__name__, "mlflow" in sys.modules)
sys.modules["mlflow"] = None  # as on an install without the extra
try:
    open_model_registry(kind="mlflow", models_dir=Path("."), mlflow=store)
except ValueError as exc:
    print(exc)
"""
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120, check=True
        )
        lines = done.stdout.splitlines()
        assert lines[0] == "FileModelRegistry MlflowModelRegistry False"
        assert "needs the `mlflow` extra" in lines[1]

    def test_a_password_in_the_tracking_uri_is_never_shown(self) -> None:
        registry = MlflowModelRegistry(tracking_uri="https://ops:s3cret@mlflow.example.com:5443/base")
        assert registry.where == "MLflow at https://ops:***@mlflow.example.com:5443/base"
        assert MlflowModelRegistry(tracking_uri="http://mlflow:5000").where == "MLflow at http://mlflow:5000"

    def test_migrate_prepares_the_mlflow_store_before_the_processes_start(
        self, tmp_path: Path, mlflow_settings: MlflowSettings
    ) -> None:
        fresh = f"sqlite:///{(tmp_path / 'fresh.db').as_posix()}"
        env = {
            "TIPWISE_DATA_DIR": str(tmp_path / "data"),
            "TIPWISE_SECRET_KEY": "test-secret-key-with-enough-length",
            "TIPWISE_MODEL_REGISTRY": "mlflow",
            "TIPWISE_MLFLOW_TRACKING_URI": fresh,
            "TIPWISE_MLFLOW_EXPERIMENT": mlflow_settings.experiment,
        }
        migrated = CliRunner().invoke(cli, ["migrate"], env=env)
        assert migrated.exit_code == 0, migrated.output
        assert f"model registry: MLflow at {fresh}, experiment {mlflow_settings.experiment!r}" in migrated.output
        assert MlflowClient(tracking_uri=fresh).get_experiment_by_name(mlflow_settings.experiment) is not None

        refused = CliRunner().invoke(cli, ["migrate"], env={**env, "TIPWISE_MLFLOW_TRACKING_URI": ""})
        assert refused.exit_code == 1
        assert "needs TIPWISE_MLFLOW_TRACKING_URI" in refused.output


class TestLearnerAndServingThroughMlflow:
    def test_ml_serve_loads_the_snapshots_the_learner_publishes_to_mlflow(
        self, make_container: ContainerFactory, clock: FakeClock, mlflow_settings: MlflowSettings
    ) -> None:
        container = make_container(
            settings={"model_registry": "mlflow"},
            mlflow_settings=mlflow_settings,
            learner_settings=LearnerSettings(snapshot_every_rewards=3, snapshot_every_seconds=3600),
        )
        served = PolicyRegistry(specs=container.registry.specs, live=container.registry.live, features=FEATURE_SPEC)
        app = create_scoring_app(registry=served, models=_mlflow(mlflow_settings), metrics=Metrics(), poll_seconds=0.05)
        assert served.versions() == {name: 0 for name in container.registry.specs}

        user = registered(container, "mlflow@example.com")
        for n in range(3):
            decide_and_react(container, user, key=f"m{n}")
            container.worker.run_once()
            clock.advance(timedelta(minutes=5))
        assert container.registry.versions()["linucb"] == 3

        with TestClient(app) as client:  # the lifespan polls MLflow for newer snapshots
            deadline = time.monotonic() + 15
            while served.versions() != container.registry.versions():
                assert time.monotonic() < deadline, "ml-serve did not load the MLflow snapshot"
                time.sleep(0.05)
            models = {m["name"]: m["model_version"] for m in client.get("/v1/models").json()}
            assert models == {"linucb": 3, "epsilon_greedy": 3, "random": 3}
            assert client.get("/readyz").json()["snapshots"] == {"linucb": 3, "epsilon_greedy": 3, "random": 3}

        decision_input = container.recommender.logged_decisions()[0]
        candidates = [decision_input.actions[t] for t in decision_input.actions]
        for seed in range(5):
            assert served.decide(context=decision_input.shared, candidates=candidates, seed=seed) == (
                container.registry.decide(context=decision_input.shared, candidates=candidates, seed=seed)
            )
