"""The MLflow adapter of the model registry port (`TIPWISE_MODEL_REGISTRY=mlflow`, extra `mlflow`).

A snapshot maps onto MLflow the way MLflow users expect to find a model:

- a registered model per policy, named `<model prefix><policy>` (`tipwise-linucb`);
- per snapshot, a run in one experiment and a model version of that run;
- the run's artifacts under `snapshot/`: `state.bin` (the learned state) and
  `snapshot.json` (the same manifest the file registry writes);
- the run's params: the policy spec, feature spec, reward map and training
  range, flattened (`spec.alpha`, `reward_map.values.done`, `training.from`) so
  runs compare side by side in the MLflow UI; its metrics: the snapshot's metrics;
- the model version's tags: the same fields as JSON (`tipwise.spec`, ...), which
  are what this adapter reads back;
- the alias `live` on the newest model version. It moves only once that version
  is complete, like the file registry's `LATEST` pointer, so a reader never
  sees a half-published snapshot.

MLflow numbers model versions 1, 2, 3...; the snapshot's own version (the
rewards the model has learned) is the tag `tipwise.snapshot_version`.

`mlflow` is imported on the adapter's first use, never by the default file
registry: the embedded default neither installs nor pays for it, and neither
does a process that holds the adapter but never publishes or reads (the API of
the scaled topology).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from tipwise.ml.serving.snapshots import ModelSnapshot

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Experiment
    from mlflow.entities.model_registry import ModelVersion

LIVE_ALIAS = "live"
ARTIFACT_DIR = "snapshot"
STATE_FILE = "state.bin"
MANIFEST_FILE = "snapshot.json"
TAG = "tipwise."
# MLflow caps a param value at 6000 characters; a longer one is cut (the tags keep the whole value).
PARAM_VALUE_LIMIT = 6000


class MlflowModelRegistry:
    """Snapshots as MLflow registered model versions; "latest" is the version the `live` alias points at."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        registry_uri: str | None = None,
        experiment: str = "tipwise",
        model_prefix: str = "tipwise-",
        artifact_location: str | None = None,
    ) -> None:
        self._tracking_uri = tracking_uri
        self._registry_uri = registry_uri
        self._client_instance: MlflowClient | None = None
        self._experiment_name = experiment
        self._artifact_location = artifact_location
        self._experiment_id: str | None = None
        self.model_prefix = model_prefix

    @property
    def _client(self) -> MlflowClient:
        if self._client_instance is None:
            # Lazy on purpose: importing mlflow takes over a second and needs the optional extra.
            from mlflow import MlflowClient

            self._client_instance = MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._registry_uri)
        return self._client_instance

    def prepare(self) -> str:
        # Creating the experiment also creates the schema of a fresh local store (sqlite:///...), which
        # processes starting together would otherwise race to create.
        self._experiment()
        return f"{self.where}, experiment {self._experiment_name!r}"

    @property
    def where(self) -> str:
        """Name the tracking server for logs and messages, without a password in its URI."""
        parts = urlsplit(self._tracking_uri)
        if parts.password is None:
            return f"MLflow at {self._tracking_uri}"
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return f"MLflow at {urlunsplit(parts._replace(netloc=netloc))}"

    def model_name(self, policy: str) -> str:
        """Return the registered model name of a policy."""
        return f"{self.model_prefix}{policy}"

    def publish(self, snapshot: ModelSnapshot) -> ModelSnapshot:
        from mlflow.entities import Metric, Param

        client = self._client
        created_ms = int(snapshot.created_at.timestamp() * 1000)
        run = client.create_run(
            self._experiment(),
            start_time=created_ms,
            run_name=f"{snapshot.name}-{snapshot.version}",
            tags={f"{TAG}policy": snapshot.name, f"{TAG}snapshot_version": str(snapshot.version)},
        )
        run_id = run.info.run_id
        try:
            client.log_batch(
                run_id,
                metrics=[
                    Metric(key, float(value), created_ms, snapshot.version) for key, value in snapshot.metrics.items()
                ],
                params=[Param(key, value[:PARAM_VALUE_LIMIT]) for key, value in _params(snapshot)],
            )
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, STATE_FILE).write_bytes(snapshot.state)
                Path(folder, MANIFEST_FILE).write_text(json.dumps(snapshot.manifest(), indent=2, sort_keys=True))
                client.log_artifacts(run_id, folder, artifact_path=ARTIFACT_DIR)
        except BaseException:
            # Mark the run failed if the server still answers; the original error is the one to raise.
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        name = self.model_name(snapshot.name)
        self._ensure_registered_model(name)
        version = client.create_model_version(
            name=name, source=f"{run.info.artifact_uri}/{ARTIFACT_DIR}", run_id=run_id, tags=_tags(snapshot)
        )
        client.set_registered_model_alias(name, LIVE_ALIAS, version.version)
        return snapshot

    def latest_version(self, name: str) -> int | None:
        live = self._live(name)
        return int(live.tags[f"{TAG}snapshot_version"]) if live is not None else None

    def latest(self, name: str) -> ModelSnapshot | None:
        live = self._live(name)
        if live is None:
            return None
        tags: dict[str, str] = live.tags
        run_id = live.run_id
        if run_id is None:
            raise ValueError(f"model version {live.name} {live.version} has no run: it was not published by Tipwise")
        run = self._client.get_run(run_id)
        with tempfile.TemporaryDirectory() as folder:
            path = self._client.download_artifacts(run_id, f"{ARTIFACT_DIR}/{STATE_FILE}", folder)
            state = Path(path).read_bytes()
        return ModelSnapshot(
            name=tags[f"{TAG}policy"],
            version=int(tags[f"{TAG}snapshot_version"]),
            spec=json.loads(tags[f"{TAG}spec"]),
            feature_spec=tags[f"{TAG}feature_spec"],
            reward_map=json.loads(tags[f"{TAG}reward_map"]),
            state=state,
            created_at=datetime.fromisoformat(tags[f"{TAG}created_at"]),
            learned_until=_moment(tags.get(f"{TAG}learned_until")),
            trained_from=_moment(tags.get(f"{TAG}trained_from")),
            trained_until=_moment(tags.get(f"{TAG}trained_until")),
            metrics=dict(run.data.metrics),
        )

    # -- internals -------------------------------------------------------------

    def _live(self, name: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_model_version_by_alias(self.model_name(name), LIVE_ALIAS)
        except MlflowException as exc:
            # No registered model yet, or one whose first version never got the alias (publish interrupted).
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._get_or_create(
                lambda: _experiment_id(self._client.get_experiment_by_name(self._experiment_name)),
                lambda: self._client.create_experiment(
                    self._experiment_name, artifact_location=self._artifact_location
                ),
            )
        return self._experiment_id

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(
                name, tags={f"{TAG}managed_by": "tipwise"}, description="Snapshots of a Tipwise policy."
            )
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    @staticmethod
    def _get_or_create(get: Callable[[], str | None], create: Callable[[], str]) -> str:
        from mlflow.exceptions import MlflowException

        found = get()
        if found is not None:
            return found
        try:
            created = create()
        except MlflowException as exc:
            # Another process (the learner, an ml-serve) created it in between.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = get()
            if found is None:
                raise
            return found
        return created


def _experiment_id(experiment: Experiment | None) -> str | None:
    return str(experiment.experiment_id) if experiment is not None else None


def _tags(snapshot: ModelSnapshot) -> dict[str, str]:
    manifest = snapshot.manifest()
    tags = {
        "policy": snapshot.name,
        "snapshot_version": str(snapshot.version),
        "spec": json.dumps(snapshot.spec, sort_keys=True),
        "feature_spec": snapshot.feature_spec,
        "reward_map": json.dumps(snapshot.reward_map, sort_keys=True),
        "created_at": manifest["created_at"],
        "learned_until": manifest["learned_until"],
        "trained_from": manifest["trained_from"],
        "trained_until": manifest["trained_until"],
    }
    return {f"{TAG}{key}": value for key, value in tags.items() if value is not None}


def _params(snapshot: ModelSnapshot) -> Iterator[tuple[str, str]]:
    yield from _flatten("spec", snapshot.spec)
    yield "feature_spec", snapshot.feature_spec
    yield from _flatten("reward_map", snapshot.reward_map)
    manifest = snapshot.manifest()
    for key, field in (("training.from", "trained_from"), ("training.until", "trained_until")):
        if manifest[field] is not None:
            yield key, manifest[field]


def _flatten(prefix: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in sorted(value.items()):
            yield from _flatten(f"{prefix}.{key}", item)
    else:
        yield prefix, value if isinstance(value, str) else json.dumps(value)


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def mlflow_installed() -> bool:
    """Return whether the `mlflow` extra is installed, without importing it."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except ValueError:  # a module named mlflow whose spec is unset: no usable install
        return False
