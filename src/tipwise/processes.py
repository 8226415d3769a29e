"""The processes of a scaled deployment: relay and learner workers, and a supervisor for all of them.

`tipwise relay` and `tipwise learner` each run one part of the embedded worker in a process of
its own, with a small HTTP server for `/healthz`, `/readyz` and `/metrics`. On SIGTERM (or Ctrl+C)
they finish the round in flight (a relay batch is published and marked, a learner batch commits
and is acknowledged), then stop. `tipwise up --scaled` starts the API, the relay, the learner and
ml-serve as separate OS processes and stops them together.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse

from tipwise.bootstrap import Container, Role
from tipwise.events.jetstream import NatsBus
from tipwise.kernel.logging import get_logger

log = get_logger(__name__)

GRACE_SECONDS = 20.0


def readiness(container: Container) -> tuple[int, dict[str, object]]:
    """Check the database and the event bus; return an HTTP status and a body.

    An unreachable database makes the process unready (503). An unreachable NATS server leaves it
    ready but degraded (200): the API keeps taking feedback into the outbox, and the relay
    publishes it once NATS is back.
    """
    body: dict[str, object] = {"status": "ok"}
    try:
        container.db.ping()
        body["database"] = "ok"
    except Exception as exc:
        log.warning("not_ready", error=type(exc).__name__)
        return 503, {"status": "unavailable", "database": "unreachable"}
    bus = container.bus
    if isinstance(bus, NatsBus):
        backlog = bus.outbox_backlog()
        body["outbox_backlog"] = backlog
        container.metrics.outbox_backlog.set(backlog)
        if bus.connected():
            body["event_bus"] = "ok"
        else:
            body["event_bus"] = "unreachable"
            body["status"] = "degraded"
    else:
        body["event_bus"] = "embedded"
    return 200, body


def health_app(container: Container, role: Role) -> FastAPI:
    app = FastAPI(title=f"Tipwise {role}", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "role": role}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        status, body = readiness(container)
        return JSONResponse({**body, "role": role}, status_code=status)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(container.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def run_worker(container: Container, *, role: Role, health_host: str, health_port: int) -> None:
    """Run this process's part of the worker until SIGTERM or SIGINT, then stop gracefully."""
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    server = uvicorn.Server(
        uvicorn.Config(
            health_app(container, role), host=health_host, port=health_port, log_config=None, access_log=False
        )
    )
    health = threading.Thread(target=server.run, name="tipwise-health", daemon=True)
    health.start()
    # What startup allocated (modules, the container) lives as long as the process: move it out
    # of the collector's sight, so a full collection under load scans only the batches in flight.
    gc.freeze()
    container.start_workers()
    log.info("worker_started", role=role, health=f"http://{health_host}:{health_port}")
    stop.wait()
    log.info("worker_stopping", role=role)
    if container.syncer is not None:
        container.syncer.stop(timeout=GRACE_SECONDS)
    container.worker.stop(timeout=GRACE_SECONDS)
    if role == "learner":
        container.learner.snapshot()  # what it learned since the last snapshot is served at once
    server.should_exit = True
    health.join(5)
    log.info("worker_stopped", role=role)


def _on_signals(handler: Callable[[], None]) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        handler()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@dataclass(frozen=True, kw_only=True)
class Ports:
    api: int = 8000
    relay: int = 8101
    learner: int = 8102
    scorer: int = 8100


def scaled_commands(*, host: str, ports: Ports) -> dict[str, list[str]]:
    """The command line of each process of the scaled topology."""
    tipwise = [sys.executable, "-m", "tipwise"]
    return {
        "ml-serve": [*tipwise, "ml-serve", "--host", host, "--port", str(ports.scorer)],
        "relay": [*tipwise, "relay", "--health-host", host, "--health-port", str(ports.relay)],
        "learner": [*tipwise, "learner", "--health-host", host, "--health-port", str(ports.learner)],
        "api": [*tipwise, "serve", "--host", host, "--port", str(ports.api)],
    }


def scaled_environment(*, host: str, ports: Ports) -> dict[str, str]:
    env = dict(os.environ)
    env["TIPWISE_EMBEDDED_WORKER"] = "false"  # the relay and learner processes do that work
    env.setdefault("TIPWISE_SCORER_URL", f"http://{host}:{ports.scorer}")
    # Decisions see what the learner learned only through snapshots: publish them promptly.
    env.setdefault("TIPWISE_LEARNER_SNAPSHOT_EVERY_SECONDS", "1")
    return env


def supervise(commands: dict[str, list[str]], env: dict[str, str], *, grace: float = GRACE_SECONDS) -> int:
    """Start each command as a process; when one exits or a signal arrives, stop them all.

    Returns 0 after a requested stop, else the exit status of the process that ended first.
    """
    stop = threading.Event()
    _on_signals(lambda: stop.set())
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            children[name] = subprocess.Popen(command, env=env)  # noqa: S603 - our own executable
            log.info("process_started", process=name, pid=children[name].pid)
        while not stop.is_set():
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    log.error("process_exited", process=name, code=code)
                    return code or 1
            stop.wait(0.5)
        return 0
    finally:
        _terminate(list(children.values()), grace=grace)


def _terminate(children: Sequence[subprocess.Popen[bytes]], *, grace: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("process_killed", pid=child.pid)
            child.kill()
            child.wait()
