"""The FastAPI application: lifespan, middleware, and each module's router."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from tipwise import __version__, auth, gateway, integrations, privacy, profile, recommender
from tipwise.bootstrap import Container
from tipwise.gateway.operations import OperatorView
from tipwise.kernel.http import RequestContextMiddleware, install_error_handlers, use_problem_media_type_in_openapi
from tipwise.kernel.logging import get_logger
from tipwise.processes import readiness

log = get_logger(__name__)


def create_app(container: Container) -> FastAPI:
    """Build the app around a wired container; the embedded worker runs for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if container.settings.embedded_worker:
            container.start_workers()
        # What exists now (modules, the advice catalogue, models, SQLAlchemy's and pydantic's
        # machinery) lives as long as the process. Left to the collector, every full collection
        # walks it all, and each one paused every request in flight: ~100 ms apiece under load
        # in `tipwise bench http`, ~15-40 ms once frozen.
        gc.collect()
        gc.freeze()
        log.info("started", database=container.db.read_engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            gc.unfreeze()  # an app stopped in a process that goes on (tests) leaves nothing pinned
            container.stop_workers()

    app = FastAPI(
        title="Tipwise",
        version=__version__,
        summary="A self-hosted personal tips engine that learns from how people react.",
        lifespan=lifespan,
    )
    app.state.container = container
    install_error_handlers(app)
    use_problem_media_type_in_openapi(app)
    app.add_middleware(RequestContextMiddleware, metrics=container.metrics)

    principal = auth.principal_dependency(container.auth)
    # First: FastAPI tries the routes in order, a few microseconds each, and decisions are the hot path.
    app.include_router(recommender.build_router(container.recommender, principal))
    app.include_router(auth.build_router(container.auth))
    app.include_router(profile.build_router(container.profile, principal))
    app.include_router(integrations.build_router(container.integrations, principal))
    app.include_router(privacy.build_router(container.privacy, container.auth, principal))
    _add_operations_routes(app, container)
    gateway.mount(
        app,
        auth=container.auth,
        profile=container.profile,
        recommender=container.recommender,
        operations=OperatorView(
            recommender=container.recommender,
            rewards=container.learner.reward_map,
            clock=container.clock,
            live_policy=lambda: container.registry.live,
            model_versions=container.registry.versions,
            evaluate=container.evaluate,
            bus_status=container.bus_status,
        ),
        data=gateway.DataActions(
            export=lambda user_id: (
                container.privacy.export(user_id=user_id),
                privacy.export_filename(container.privacy),
            ),
            erase=lambda user_id, confirm: privacy.erase_confirmed(
                container.privacy, container.auth, user_id=user_id, confirm=confirm
            ),
        ),
        secret_key=container.secret_key,
        integrations=container.integrations,
    )
    return app


def _add_operations_routes(app: FastAPI, container: Container) -> None:
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """Liveness: the process is up."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        responses={503: {"description": "The database is unreachable."}},
    )
    def readyz() -> JSONResponse:
        """Readiness: the database answers; with NATS, `degraded` while the bus is unreachable."""
        status, body = readiness(container)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(container.metrics.render(), media_type="text/plain; version=0.0.4")
