"""Database access: engines, the declarative base, and read/write sessions.

Two session types keep intent visible: a `ReadSession` never writes, a
`WriteSession` is committed exactly once by the request or task boundary that
opened it (services never commit). On SQLite a write transaction starts with
`BEGIN IMMEDIATE` so concurrent writers queue on the lock instead of failing
when a read transaction tries to upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every module; each module owns its own tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC on every backend (SQLite has no zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ReadSession(Session):
    """A session for queries only."""


class WriteSession(Session):
    """A session whose changes the caller commits once."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


# orjson is several times faster than the standard library on the large JSON
# columns of a decision (context snapshot, probabilities), and round-trips floats exactly.
JSON_OPTIONS: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def _sqlite_engine(url: str, *, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **JSON_OPTIONS)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


@dataclass
class Database:
    """Engines and session factories for one database URL."""

    url: str
    read_engine: Engine
    write_engine: Engine

    def __post_init__(self) -> None:
        self._read = sessionmaker(self.read_engine, class_=ReadSession, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, class_=WriteSession, expire_on_commit=False)
        # SQLite admits one writer at a time, and a writer that finds the lock taken sleeps in
        # steps of milliseconds before it retries. Queueing this process's writers on a Python
        # lock hands the database over as soon as it is free (other processes still meet the
        # busy timeout).
        self._writers: threading.Lock | None = threading.Lock() if is_sqlite(self.url) else None

    @classmethod
    def connect(cls, url: str) -> Database:
        """Create engines for `url`; SQLite files get WAL mode and immediate write locks."""
        if is_sqlite(url):
            _prepare_sqlite_file(url)
            return cls(
                url=url,
                read_engine=_sqlite_engine(url, begin="BEGIN"),
                write_engine=_sqlite_engine(url, begin="BEGIN IMMEDIATE"),
            )
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, **JSON_OPTIONS)
        return cls(url=url, read_engine=engine, write_engine=engine)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def read(self) -> Iterator[ReadSession]:
        """Open a read-only unit of work; closing it ends the transaction, loaded objects stay readable."""
        with self._read() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """Open a read-only Core connection: for the small reads of the hot path, where a session costs more."""
        with self.read_engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self) -> Iterator[WriteSession]:
        """Open a unit of work that commits once on success and rolls back on error."""
        if self._writers is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._writers, self._write() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Run a trivial query; raises when the database is unreachable."""
        with self.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()
