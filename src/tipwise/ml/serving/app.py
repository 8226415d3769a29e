"""`tipwise ml-serve`: a stateless scoring process that serves the newest model snapshots.

It loads each policy's newest snapshot from the model registry at start and
polls for newer ones; a new snapshot is swapped in atomically, so requests in
flight finish on the model they started with and none is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from tipwise.kernel.http import RequestContextMiddleware, install_error_handlers
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics
from tipwise.ml.serving.policies import build_policy, spec_from_dict
from tipwise.ml.serving.registry import PolicyRegistry
from tipwise.ml.serving.snapshots import ModelRegistry
from tipwise.ml.serving.wire import ModelOut, ScoreRequest, ScoreResponse

log = get_logger(__name__)


class SnapshotLoader:
    """Keeps a `PolicyRegistry` on the newest snapshot of every policy."""

    def __init__(self, *, registry: PolicyRegistry, models: ModelRegistry, metrics: Metrics) -> None:
        self._registry = registry
        self._models = models
        self._metrics = metrics
        self._loaded: dict[str, int] = {}

    @property
    def loaded(self) -> dict[str, int]:
        return dict(self._loaded)

    def refresh(self) -> list[str]:
        """Load every snapshot newer than the one in use; return the names that changed."""
        changed = []
        for name, spec in self._registry.specs.items():
            version = self._models.latest_version(name)
            if version is None or version == self._loaded.get(name):
                continue
            snapshot = self._models.latest(name)
            if snapshot is None:
                continue
            if spec_from_dict(snapshot.spec) != spec or snapshot.feature_spec != self._registry.features.name:
                log.warning("snapshot_skipped", policy=name, version=snapshot.version, reason="spec differs")
                self._loaded[name] = version
                continue
            model = build_policy(spec, features=self._registry.features)
            model.load_state(snapshot.state)
            self._registry.publish(name, model, learned_until=snapshot.learned_until)
            self._loaded[name] = version
            self._metrics.model_version.labels(policy=name).set(model.version)
            changed.append(name)
            log.info("snapshot_loaded", policy=name, version=snapshot.version)
        return changed


def create_scoring_app(
    *, registry: PolicyRegistry, models: ModelRegistry, metrics: Metrics | None = None, poll_seconds: float = 1.0
) -> FastAPI:
    """Build the scoring app; it reloads snapshots every `poll_seconds` while it runs."""
    metrics = metrics or Metrics()
    loader = SnapshotLoader(registry=registry, models=models, metrics=metrics)
    loader.refresh()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(poll_seconds):
            try:
                loader.refresh()
            except Exception:
                log.exception("snapshot_refresh_failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=poll, name="tipwise-snapshot-poll", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    app = FastAPI(title="Tipwise ml-serve", lifespan=lifespan)
    app.state.loader = loader
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.post("/v1/score", response_model=ScoreResponse)
    def score(request: ScoreRequest) -> ScoreResponse:
        """Score candidates with the live policy and every shadow, from the request's seed."""
        ranked = registry.decide(
            context=request.context, candidates=request.candidates, seed=request.seed, explore=request.explore
        )
        return ScoreResponse.of(ranked)

    @app.get("/v1/models", response_model=list[ModelOut])
    def models_in_use() -> list[ModelOut]:
        """The policies served and the model version of each."""
        return [
            ModelOut(
                name=name,
                live=name == registry.live,
                policy_version=registry.versions_of_specs[name],
                model_version=version,
            )
            for name, version in registry.versions().items()
        ]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict[str, object]:
        return {"status": "ok", "snapshots": loader.loaded}

    @app.get("/metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return app
