"""`tipwise bench events`: events through outbox -> bus -> learner, and reaction-to-use time.

Throughput: decision/reaction event pairs fill the outbox of a fresh PostgreSQL database; then
the bus carries them to the learner, which applies each with its tracking row. Embedded: one
worker relays into the database log and feeds the learner, as `tipwise serve` does. Scaled:
`tipwise relay` and `tipwise learner` run as processes of their own and the events travel on NATS
JetStream. The rate is events applied per second, from the relay's first publish to the
learner's last tracking row (both timestamps from the database rows).

Reaction to use: over HTTP, a person gets a tip, reacts, and asks for tips until one is decided
with a model version that counts the reaction. Embedded is `tipwise serve` on SQLite; scaled is
`tipwise up --scaled` on PostgreSQL and NATS.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import psycopg
import typer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tipwise.bench.common import Result, console, latency_result, print_table, progress, write_json

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LOCAL_NATS = "nats://127.0.0.1:4222"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway account of the benchmark


def register(app: typer.Typer) -> None:
    app.command("events")(events_benchmark)


def events_benchmark(
    postgres_url: Annotated[
        str, typer.Option(help="A PostgreSQL server to create throwaway databases on (admin URL).")
    ] = LOCAL_POSTGRES,
    nats_url: Annotated[str, typer.Option(help="A NATS server with JetStream.")] = LOCAL_NATS,
    pairs: Annotated[int, typer.Option(help="Decision/reaction pairs per throughput run.")] = 10_000,
    reactions: Annotated[int, typer.Option(help="Reactions timed per topology for reaction-to-use.")] = 20,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results here as JSON.")] = None,
) -> None:
    """Measure events/s through outbox -> bus -> learner and reaction-to-use time, embedded vs scaled."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per polled decision otherwise
    results = [
        throughput(postgres_url, None, pairs),
        throughput(postgres_url, nats_url, pairs),
        reaction_to_use(postgres_url, None, reactions),
        reaction_to_use(postgres_url, nats_url, reactions),
    ]
    print_table("events", results)
    if json_path is not None:
        write_json(json_path, "events", results, pairs=pairs, reactions=reactions)


# -- throughput ---------------------------------------------------------------


def throughput(postgres_url: str, nats_url: str | None, pairs: int) -> Result:
    from tipwise import migrations
    from tipwise.events.models import OutboxRow, TrackingRow
    from tipwise.kernel.db import Database

    kind = "scaled (NATS, relay + learner processes)" if nats_url else "embedded (database log, worker thread)"
    with _fresh_database(postgres_url) as url, tempfile.TemporaryDirectory(prefix="tipwise-bench-") as tmp:
        db = Database.connect(url)
        migrations.upgrade(db)
        env = _environment(url, Path(tmp), nats_url)
        total = 2 * pairs
        # The outbox is filled first, as a burst of committed decisions and reactions would leave
        # it; the clock runs from the relay's first publish to the learner's last tracking row.
        _produce(db, pairs)

        def applied() -> int:
            with db.read() as session:
                return session.scalar(select(func.count()).select_from(TrackingRow)) or 0

        with _workers(env, nats_url is not None, Path(tmp)) as wait_ready:
            wait_ready()
            waited = time.perf_counter()
            with progress() as bar:
                task = bar.add_task(f"{kind}: learning", total=total)
                while (done := applied()) < total:
                    bar.update(task, completed=done)
                    time.sleep(0.05)
                    if time.perf_counter() - waited > 600:
                        raise RuntimeError(f"the learner applied only {done} of {total} events in 10 minutes")
        with db.read() as session:
            first = session.scalar(select(func.min(OutboxRow.published_at)))
            last = session.scalar(select(func.max(TrackingRow.applied_at)))
        db.dispose()
    if first is None or last is None:
        raise RuntimeError("no event was published and applied")
    seconds = (last - first).total_seconds()
    console.print(f"{kind}: {total} events in {seconds:.2f} s")
    return Result(
        name=f"events/s {kind}",
        mean=total / seconds,
        std=0.0,
        seconds=seconds,
        unit="1/s",
        extra={"events": total, "database": "postgresql"},
    )


def _produce(db: object, pairs: int) -> None:
    from tipwise import events
    from tipwise.bench.logs import decisions_and_reactions
    from tipwise.kernel.db import Database

    assert isinstance(db, Database)  # noqa: S101 - typed loosely to keep imports lazy
    log = list(decisions_and_reactions(pairs, now=datetime.now(UTC)))
    for start in range(0, len(log), 500):
        with db.write() as session:
            for event in log[start : start + 500]:
                events.publish(session, event)


@contextmanager
def _workers(env: dict[str, str], scaled: bool, tmp: Path) -> Iterator[Callable[[], None]]:
    """Run the bus's workers: relay and learner processes (scaled), or one embedded worker process."""
    ports = {"relay": _free_port(), "learner": _free_port()}
    if scaled:
        commands = {
            role: [sys.executable, "-m", "tipwise", role, "--health-port", str(port)] for role, port in ports.items()
        }
    else:
        # The embedded worker does relay and learner in one thread, as in `tipwise serve`.
        commands = {"worker": [sys.executable, "-m", "tipwise.bench.events", str(ports["relay"])]}
    children = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            command, env=env, stdout=(tmp / f"{name}.log").open("wb"), stderr=subprocess.STDOUT
        )
        for name, command in commands.items()
    ]

    def wait_ready() -> None:
        urls = [f"http://127.0.0.1:{ports[name]}/readyz" for name in ("relay", "learner") if scaled or name == "relay"]
        deadline = time.monotonic() + 120
        for url in urls:
            while not _answers(url):
                if time.monotonic() > deadline or any(child.poll() is not None for child in children):
                    logs = "\n".join(p.read_text()[-2000:] for p in tmp.glob("*.log"))
                    raise RuntimeError(f"a worker did not start:\n{logs}")
                time.sleep(0.2)

    try:
        yield wait_ready
    finally:
        _stop(children)


def _embedded_worker(health_port: int) -> None:
    """Entry point of the embedded throughput run's worker process."""
    from tipwise.bootstrap import build
    from tipwise.processes import run_worker

    container = build(role="all")
    try:
        run_worker(container, role="all", health_host="127.0.0.1", health_port=health_port)
    finally:
        container.close()


# -- reaction to use ------------------------------------------------------------


def reaction_to_use(postgres_url: str, nats_url: str | None, reactions: int) -> Result:
    kind = "scaled (Postgres, NATS, 4 processes)" if nats_url else "embedded (SQLite, 1 process)"
    with tempfile.TemporaryDirectory(prefix="tipwise-bench-") as tmp, _fresh_database(postgres_url) as url:
        port = _free_port()
        env = _environment(url if nats_url else None, Path(tmp), nats_url)
        # Every poll is a decision: keep every tip eligible, or the library runs out.
        env |= {"TIPWISE_PORT": str(port), "TIPWISE_HOST": "127.0.0.1", "TIPWISE_RECOMMENDER_RECENT_WINDOW_HOURS": "0"}
        command = [sys.executable, "-m", "tipwise", "up"]
        if nats_url:
            command += ["--scaled", "--scorer-port", str(_free_port())]
            command += ["--relay-health-port", str(_free_port()), "--learner-health-port", str(_free_port())]
        log = (Path(tmp) / "up.log").open("wb")
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while not _answers(f"{base}/readyz"):
                if time.monotonic() > deadline or child.poll() is not None:
                    raise RuntimeError((Path(tmp) / "up.log").read_text()[-3000:])
                time.sleep(0.2)
            samples = _time_reactions(base, reactions, kind)
        finally:
            _stop([child])
    result = latency_result(f"reaction-to-use {kind}", samples, seconds=float(np.sum(samples)) / 1e9)
    console.print(f"{kind}: reaction-to-use p50 {result.p50:.0f} ms over {reactions} reactions")
    return result


def _time_reactions(base: str, reactions: int, kind: str) -> list[int]:
    from tipwise.profile import CONSENT_WORDING_VERSION, Purpose

    samples: list[int] = []
    with httpx.Client(base_url=base, timeout=30) as client, progress() as bar:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).raise_for_status()
        token = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        # Without the personalization and model-training consents nothing would be learned.
        client.put(
            "/v1/me/consents",
            json={"wording_version": CONSENT_WORDING_VERSION, "purposes": dict.fromkeys(Purpose, True)},
            headers=headers,
        ).raise_for_status()
        task = bar.add_task(f"{kind}: reactions", total=reactions)
        version = -1
        for n in range(reactions):
            decision = client.post("/v1/tips/next", headers=headers).json()
            version = max(version, int(decision["model_version"]))
            started = time.perf_counter_ns()
            client.post(
                "/v1/feedback",
                headers=headers,
                json={"tip_instance_id": decision["tip_instance_id"], "reaction": "done", "idempotency_key": f"k{n}"},
            ).raise_for_status()
            while True:
                polled = client.post("/v1/tips/next", headers=headers, json={"explore": False})
                polled.raise_for_status()
                nxt = polled.json()
                if int(nxt["model_version"]) > version:
                    samples.append(time.perf_counter_ns() - started)
                    version = int(nxt["model_version"])
                    break
                if time.perf_counter_ns() - started > 60e9:
                    raise RuntimeError("no decision used the reaction within 60 s")
                time.sleep(0.02)
            bar.advance(task)
    return samples


# -- plumbing -------------------------------------------------------------------


def _environment(database_url: str | None, tmp: Path, nats_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("TIPWISE_")]:
        del env[key]
    env |= {"TIPWISE_DATA_DIR": str(tmp / "data"), "TIPWISE_LOG_LEVEL": "WARNING", "TIPWISE_LOG_FORMAT": "json"}
    if database_url:
        env["TIPWISE_DATABASE_URL"] = database_url
    if nats_url:
        env |= {"TIPWISE_EVENT_BUS": nats_url, "TIPWISE_NATS_PREFIX": f"bench{uuid.uuid4().hex[:8]}"}
    return env


@contextmanager
def _fresh_database(admin_url: str) -> Iterator[str]:
    name = f"tipwise_bench_{uuid.uuid4().hex[:10]}"
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    _embedded_worker(int(sys.argv[1]))
