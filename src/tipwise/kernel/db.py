"""Database access: engines, the declarative base, and read/write sessions.

Two session types keep intent visible: a `ReadSession` never writes, a
`WriteSession` is committed exactly once by the request or task boundary that
opened it (services never commit). On SQLite a write transaction starts with
`BEGIN IMMEDIATE` so concurrent writers queue on the lock instead of failing
when a read transaction tries to upgrade.
"""

from __future__ import annotations

import asyncio
import sqlite3
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
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from tipwise.kernel.logging import get_logger

log = get_logger(__name__)

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


class WriterBusy(Exception):
    """Another writer of this process holds SQLite's write lock (from `Database.write(wait=False)`)."""


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


# A commit that crosses SQLite's automatic checkpoint threshold copies the WAL into the database
# file and syncs it before it returns: the decision that happens to commit then waits for the disk
# (the p99 of `tipwise bench decide`). Write connections leave that to a background thread
# (`_Checkpointer`) and keep the automatic one only as a backstop, at ten times the default.
AUTOCHECKPOINT_PAGES = 10_000


def _sqlite_engine(url: str, *, begin: str, autocheckpoint: int | None = None, pooled: bool = True) -> Engine:
    options: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **JSON_OPTIONS, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
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
        database = make_url(self.url).database if is_sqlite(self.url) else None
        self._checkpointer = _Checkpointer(database) if database and database != ":memory:" else None
        # Reads on an event loop (SQLite only reads there) get a connection of their own per thread.
        on_file = database is not None and database not in ("", ":memory:")
        self._loop_reads = _LoopReads(_sqlite_engine(self.url, begin="BEGIN", pooled=False)) if on_file else None

    @classmethod
    def connect(cls, url: str) -> Database:
        """Create engines for `url`; SQLite files get WAL mode and immediate write locks."""
        if is_sqlite(url):
            _prepare_sqlite_file(url)
            return cls(
                url=url,
                read_engine=_sqlite_engine(url, begin="BEGIN"),
                write_engine=_sqlite_engine(url, begin="BEGIN IMMEDIATE", autocheckpoint=AUTOCHECKPOINT_PAGES),
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
    def read_connection(self, *, within: Connection | None = None) -> Iterator[Connection]:
        """Open a read-only Core connection: for the small reads of the hot path, where a session costs more.

        With `within`, use that connection instead (a caller's open transaction, so several
        modules' reads share it); it is left open.
        """
        if within is not None:
            yield within
            return
        if self._loop_reads is not None and _on_event_loop():
            with self._loop_reads.connection() as connection:
                yield connection
            return
        with self.read_engine.connect() as connection:
            yield connection

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[WriteSession]:
        """Open a unit of work that commits once on success and rolls back on error.

        With `wait=False`, raise `WriterBusy` at once (nothing opened) when another writer of
        this process holds SQLite's write lock: an event loop must not block on it.
        """
        if self._writers is None:
            with self._write() as session, session.begin():
                yield session
            return
        if not self._writers.acquire(blocking=wait):
            raise WriterBusy("another writer of this process holds the write lock")
        try:
            with self._write() as session, session.begin():
                yield session
        finally:
            self._writers.release()
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def ping(self) -> None:
        """Run a trivial query; raises when the database is unreachable."""
        with self.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        if self._loop_reads is not None:
            self._loop_reads.close()
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()


def _on_event_loop() -> bool:
    """Whether this thread runs an asyncio event loop (the caller may be sync code the loop called)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _LoopReads:
    """One read connection per event-loop thread, outside the read pool.

    The hot reads on SQLite run on the event loop itself (a local file: cheaper than a hop to a
    thread). From the pool, such a read would wait whenever threads hold all of its
    connections, and the loop, with every request on it, would wait too (up to the pool's
    timeout, 30 s). A loop runs one thing at a time, so one connection per loop thread serves
    it. Each outermost use ends its read transaction, so it never holds a snapshot of the WAL.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._opened: list[Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        local = self._local
        kept: Connection | None = getattr(local, "connection", None)
        if kept is None or kept.closed:
            kept = local.connection = self._engine.connect()
            with self._lock:
                self._opened.append(kept)
        depth: int = getattr(local, "depth", 0)
        local.depth = depth + 1
        try:
            yield kept
        finally:
            local.depth = depth
            if depth == 0 and kept.in_transaction():
                kept.rollback()

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._engine.dispose()


class _Checkpointer:
    """Copies SQLite's write-ahead log into the database file in a thread of its own, after writes.

    A PASSIVE checkpoint neither waits for nor blocks readers and writers; it runs at most every
    `pause` seconds while writes keep coming, on its own connection, and sqlite3 releases the
    GIL while it works. What it has not copied yet is as durable in the WAL as before.
    """

    def __init__(self, path: str, *, pause: float = 0.2) -> None:
        self._path = path
        self._pause = pause
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """Note that a write committed (cheap: called after every write transaction)."""
        self._wrote.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="tipwise-sqlite-checkpoint", daemon=True)
                    self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            self._wrote.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=30000")
            while not self._stopping.is_set():
                self._wrote.wait()
                self._stopping.wait(self._pause)  # let a burst of commits pass first
                self._wrote.clear()
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    # The automatic checkpoint remains as a backstop; try again after the next write.
                    log.warning("sqlite_checkpoint_failed", exc_info=True)
        finally:
            connection.close()
