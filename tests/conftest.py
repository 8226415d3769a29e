"""Fixtures shared by every suite: databases (SQLite and PostgreSQL), a wired container, an HTTP client."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.nats import nats_server
from tests.support.postgres import fresh_database, postgres_server
from tests.support.templates import MigratedTemplates
from tipwise.app import create_app
from tipwise.auth import AuthSettings
from tipwise.bootstrap import Container, build
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.ml.serving import MlflowSettings
from tipwise.settings import Settings

# Cheap password hashing keeps the suites fast; production uses the RFC 9106 defaults.
FAST_AUTH = AuthSettings(argon2_time_cost=1, argon2_memory_cost_kib=64)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    with nats_server() as url:
        yield url


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> MigratedTemplates:
    """`templates.prepare(url)` brings a test database to the newest schema (see tests/support/templates.py)."""
    return MigratedTemplates(tmp_path_factory.mktemp("templates"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'tipwise.sqlite3').as_posix()}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'tipwise.sqlite3').as_posix()}"


@pytest.fixture
def migrated(database_url: str, templates: MigratedTemplates) -> Iterator[Database]:
    templates.prepare(database_url)
    db = Database.connect(database_url)
    yield db
    db.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def counting_seeds(start: int = 1) -> Callable[[], int]:
    counter = itertools.count(start)
    return lambda: next(counter)


ContainerFactory = Callable[..., Container]


@pytest.fixture
def make_container(tmp_path: Path, clock: FakeClock, templates: MigratedTemplates) -> Iterator[ContainerFactory]:
    """Build containers on migrated databases; each is closed after the test."""
    built: list[Container] = []

    def factory(
        database_url: str | None = None, *, settings: dict[str, object] | None = None, **overrides: object
    ) -> Container:
        """Build on `database_url` (default: SQLite in the temp dir); `settings` overrides `Settings` fields."""
        fields: dict[str, object] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "secret_key": "test-secret-key-with-enough-length",
            "embedded_worker": False,
        }
        fields.update(settings or {})
        settings_ = Settings(**fields)  # type: ignore[arg-type]
        templates.prepare(settings_.sqlalchemy_url)
        options: dict[str, object] = {"clock": clock, "seeds": counting_seeds(), "auth_settings": FAST_AUTH}
        options.update(overrides)
        container = build(settings_, **options)  # type: ignore[arg-type]
        built.append(container)
        return container

    yield factory
    for container in built:
        container.close()


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    """A container on SQLite in a temp dir, with a fake clock and deterministic seeds."""
    return make_container()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def mlflow_tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One local MLflow store per session (SQLite, no server): creating its schema takes seconds."""
    return f"sqlite:///{(tmp_path_factory.mktemp('mlflow') / 'mlflow.db').as_posix()}"


@pytest.fixture
def mlflow_settings(mlflow_tracking_uri: str, tmp_path: Path) -> MlflowSettings:
    """MLflow settings of a test: the session's store, its own experiment, model names and artifact folder."""
    unique = uuid.uuid4().hex[:12]
    return MlflowSettings(
        tracking_uri=mlflow_tracking_uri,
        experiment=f"tipwise-{unique}",
        model_prefix=f"t{unique}-",
        artifact_location=(tmp_path / "mlflow-artifacts").as_uri(),
    )
