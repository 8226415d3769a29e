"""All SQL of the events module."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Row,
    String,
    Table,
    Uuid,
    and_,
    any_,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tipwise.events.contracts import Event
from tipwise.events.models import ConsumerPositionRow, LogRow, OutboxRow, TrackingRow
from tipwise.kernel.sqlite_driver import DriverStatement, from_driver, json_array, json_values, to_driver

# Core statements on the tables, not the ORM entities: the log is written and read in bulk, and
# the outbox on every decision; no row object is ever needed.
_OUTBOX = cast(Table, OutboxRow.__table__)
_LOG = cast(Table, LogRow.__table__)
_TRACKING = cast(Table, TrackingRow.__table__)
_INSERT_OUTBOX = insert(_OUTBOX)
# Claiming a batch is one statement on PostgreSQL: the ids travel as one array parameter, and the
# rows already there (events applied before) are skipped and not returned.
_CLAIM_POSTGRES = (
    postgresql.insert(_TRACKING)
    .from_select(
        ["consumer", "event_id", "applied_at"],
        select(
            bindparam("consumer", type_=String()),
            func.unnest(bindparam("event_ids", type_=postgresql.ARRAY(Uuid()))),
            bindparam("at", type_=_TRACKING.c.applied_at.type),
        ),
    )
    .on_conflict_do_nothing()
    .returning(_TRACKING.c.event_id)
)
_MARK_PUBLISHED_POSTGRES = (
    update(_OUTBOX)
    .where(_OUTBOX.c.seq == any_(bindparam("seqs", type_=postgresql.ARRAY(BigInteger()))))
    .values(published_at=bindparam("at", type_=_OUTBOX.c.published_at.type))
)


def append_outbox(session: Session, event: Event, *, payload: bytes | None = None, encrypted: bool = False) -> None:
    # On the session's Core connection (the same transaction): every decision writes one, and the
    # session's own execute adds its ORM statement handling to a plain insert.
    session.connection().execute(
        _INSERT_OUTBOX,
        {
            "event_id": event.id,
            "type": event.type,
            "subject": event.subject,
            "time": event.time,
            "schema_version": event.schema_version,
            "trace_id": event.trace_id,
            "payload": event.payload if payload is None else payload,
            "encrypted": encrypted,
        },
    )


def unpublished_events(session: Session, *, limit: int, lock: bool = False) -> list[tuple[int, Event]]:
    """Return the oldest unpublished outbox events with their outbox sequence numbers.

    With `lock`, the rows stay locked until the transaction ends and rows another relay holds are
    skipped (PostgreSQL; SQLite has one writer anyway).
    """
    query = select(_OUTBOX).where(_OUTBOX.c.published_at.is_(None)).order_by(_OUTBOX.c.seq).limit(limit)
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [(row.seq, _to_event(row)) for row in session.execute(query)]


def outbox_backlog(session: Session) -> int:
    query = select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
    return session.scalar(query) or 0


def mark_published(session: Session, seqs: Sequence[int], *, at: datetime) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: the statement is the same text for any batch (`IN` is not).
        session.execute(_MARK_PUBLISHED_POSTGRES, {"seqs": list(seqs), "at": at})
    else:
        session.execute(update(_OUTBOX).where(_OUTBOX.c.seq.in_(seqs)).values(published_at=at))


# The last outbox sequence number of the next `limit` unpublished events: the window a relay moves at once.
_UNPUBLISHED = (
    select(_OUTBOX.c.seq)
    .where(_OUTBOX.c.published_at.is_(None))
    .order_by(_OUTBOX.c.seq)
    .limit(bindparam("limit"))
    .subquery()
)
_UNPUBLISHED_END = select(func.max(_UNPUBLISHED.c.seq))
_IN_RELAY_WINDOW = and_(_OUTBOX.c.published_at.is_(None), _OUTBOX.c.seq <= bindparam("end"))
_RELAYED = ("event_id", "type", "subject", "time", "schema_version", "trace_id", "payload", "encrypted")
_APPENDED = select(
    *(_OUTBOX.c[name] for name in _RELAYED), bindparam("at", type_=_LOG.c.appended_at.type).label("appended_at")
).where(_IN_RELAY_WINDOW)
# Appending skips events already on the log: a relay that crashed after appending, before marking, sends them again.
_APPEND_TO_LOG = {
    name: insert_of(_LOG)
    .from_select([*_RELAYED, "appended_at"], _APPENDED.order_by(_OUTBOX.c.seq))
    .on_conflict_do_nothing(index_elements=[_LOG.c.event_id])
    for name, insert_of in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}
_MARK_RELAYED = update(_OUTBOX).where(_IN_RELAY_WINDOW).values(published_at=bindparam("at"))


def unpublished_end(session: Session, *, limit: int) -> int | None:
    """Return the outbox sequence number that ends the next `limit` unpublished events; None when there are none."""
    end: int | None = session.scalar(_UNPUBLISHED_END, {"limit": limit})
    return end


def append_to_log(session: Session, *, end: int, at: datetime) -> None:
    """Append the unpublished outbox events up to `end` to the log, in outbox order, in one statement.

    The rows go from table to table inside the database: nothing is read into Python, converted
    and written back, which cost the embedded relay (in the app process) more than the rest of it.
    """
    session.execute(_APPEND_TO_LOG[session.get_bind().dialect.name], {"end": end, "at": at})


def mark_relayed(session: Session, *, end: int, at: datetime) -> int:
    """Mark the unpublished outbox events up to `end` published at `at`; return how many."""
    result = session.execute(_MARK_RELAYED, {"end": end, "at": at})
    return int(getattr(result, "rowcount", 0) or 0)


def read_log(session: Session, *, after: int, limit: int) -> list[tuple[int, Event]]:
    query = select(_LOG).where(_LOG.c.position > after).order_by(_LOG.c.position).limit(limit)
    return [(row.position, _to_event(row)) for row in session.execute(query)]


# The last position of the next `limit` log entries after `after`: the window a consumer's batch covers.
_WINDOW = (
    select(_LOG.c.position)
    .where(_LOG.c.position > bindparam("after"))
    .order_by(_LOG.c.position)
    .limit(bindparam("limit"))
    .subquery()
)
_WINDOW_END = select(func.max(_WINDOW.c.position))
# The envelope columns a consumer reads (not `appended_at`).
_ENVELOPE = (
    _LOG.c.position,
    _LOG.c.event_id,
    _LOG.c.type,
    _LOG.c.subject,
    _LOG.c.time,
    _LOG.c.schema_version,
    _LOG.c.payload,
    _LOG.c.trace_id,
    _LOG.c.encrypted,
)


def read_log_of_types(
    session: Session, *, after: int, limit: int, types: Collection[str]
) -> tuple[int | None, list[Event]]:
    """Return the end of the window of the next `limit` log entries after `after`, and its events of `types`.

    The window is the one `read_log` reads, but only the events a consumer wants are loaded and
    built: a consumer of a few types skips the rest of the log without decoding it. The end is
    None when nothing follows `after`.
    """
    end = session.scalar(_WINDOW_END, {"after": after, "limit": limit})
    if end is None:
        return None, []
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        return end, _read_window_sqlite(session, after=after, end=end, types=types)
    query = (
        select(*_ENVELOPE)
        .where(_LOG.c.position > after, _LOG.c.position <= end, _LOG.c.type.in_(sorted(types)))
        .order_by(_LOG.c.position)
    )
    return end, [_to_event(cast("Row[Any]", row)) for row in session.execute(query)]


# The events of some types in a window of the log, read through the driver (SQLite).
_READ_WINDOW_SQLITE = DriverStatement(
    select(*_ENVELOPE)
    .where(
        _LOG.c.position > bindparam("after"),
        _LOG.c.position <= bindparam("end"),
        _LOG.c.type.in_(json_values("types")),
    )
    .order_by(_LOG.c.position)
)


def _read_window_sqlite(session: Session, *, after: int, end: int, types: Collection[str]) -> list[Event]:
    """`read_log_of_types`'s events on SQLite: driver rows, converted by the columns' own result processors.

    The same values as the Core query gives (the processors are the ones SQLAlchemy applies),
    without its per-row result machinery: a consumer reads thousands of events per batch.
    """
    to_id, to_time = _FROM_DRIVER
    rows = (
        session.connection()
        .exec_driver_sql(
            _READ_WINDOW_SQLITE.sql,
            _READ_WINDOW_SQLITE.parameters({"after": after, "end": end, "types": json_array(sorted(types))}),
        )
        .fetchall()
    )
    return [
        Event(
            id=to_id(event_id),
            type=kind,
            subject=subject,
            time=to_time(time),
            schema_version=schema_version,
            payload=payload,
            trace_id=trace_id,
            encrypted=bool(encrypted),
        )
        for _, event_id, kind, subject, time, schema_version, payload, trace_id, encrypted in rows
    ]


_FROM_DRIVER = (from_driver(_LOG.c.event_id.type), from_driver(_LOG.c.time.type))


def head_position(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.max(LogRow.position), 0))) or 0


def oldest_after(session: Session, *, position: int) -> datetime | None:
    query = select(LogRow.appended_at).where(LogRow.position > position).order_by(LogRow.position).limit(1)
    return session.scalar(query)


def consumer_position(session: Session, consumer: str) -> int:
    row = session.get(ConsumerPositionRow, consumer)
    return row.position if row else 0


def set_consumer_position(session: Session, consumer: str, position: int) -> None:
    row = session.get(ConsumerPositionRow, consumer)
    if row is None:
        session.add(ConsumerPositionRow(consumer=consumer, position=position))
    else:
        row.position = position


def claim(session: Session, *, consumer: str, event_ids: Sequence[UUID], at: datetime) -> set[UUID]:
    """Record tracking rows for `event_ids`; return the ids the consumer had not applied before.

    One statement both checks and records, in the caller's transaction: the effect of the events
    returned must commit with it. A concurrent transaction claiming the same id waits for this
    one, so only one of them gets it.
    """
    if not event_ids:
        return set()
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        result = session.execute(_CLAIM_POSTGRES, {"consumer": consumer, "event_ids": list(event_ids), "at": at})
        return set(result.scalars())
    return _claim_sqlite(session, consumer=consumer, event_ids=event_ids, at=at)


def _claim_sqlite(session: Session, *, consumer: str, event_ids: Sequence[UUID], at: datetime) -> set[UUID]:
    """`claim` on SQLite: look up the ids applied before, then insert the others with one executemany.

    A write transaction on SQLite holds the database's write lock from its start (`BEGIN
    IMMEDIATE`, see `tipwise.kernel.db`), so nothing can claim an id between the look-up and the
    insert. The rows go to the driver's executemany with their values converted once by the
    columns' own bind processors (the same stored form as any other insert): SQLAlchemy's
    per-row parameter handling cost more than the insert itself for a batch of thousands.
    """
    to_id = _TRACKED_ID
    wanted: dict[str, UUID] = {}
    for event_id in event_ids:
        wanted.setdefault(to_id(event_id), event_id)
    connection = session.connection()
    known = connection.exec_driver_sql(
        _KNOWN_SQLITE.sql, _KNOWN_SQLITE.parameters({"consumer": consumer, "ids": json_array(wanted)})
    )
    # The stored form of the ids applied before (the driver's rows: no UUID is made for them).
    for (stored,) in known:
        wanted.pop(stored, None)
    if wanted:
        applied_at = to_driver(_TRACKING.c.applied_at.type)(at)
        connection.exec_driver_sql(_INSERT_TRACKING_SQLITE, [(consumer, stored, applied_at) for stored in wanted])
    return set(wanted.values())


# Which of a JSON array of stored event ids a consumer has applied (SQLite, through the driver).
_KNOWN_SQLITE = DriverStatement(
    select(_TRACKING.c.event_id).where(
        _TRACKING.c.consumer == bindparam("consumer"), _TRACKING.c.event_id.in_(json_values("ids"))
    )
)
_TRACKED_ID = to_driver(_TRACKING.c.event_id.type)
# The SQL of a plain insert of the three columns, as SQLAlchemy writes it for SQLite (qmark parameters, in this order).
_INSERT_TRACKING_SQLITE = str(
    insert(_TRACKING)
    .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"), applied_at=bindparam("applied_at"))
    .compile(dialect=sqlite.dialect())
)


def applied_by(session: Session, consumer: str, *, source: str, after: int, limit: int) -> list[tuple[int, Event]]:
    """Return events `consumer` has applied (tracking rows), in log (or outbox) order, after position `after`."""
    applied = select(TrackingRow.event_id).where(TrackingRow.consumer == consumer)
    if source == "log":
        query = (
            select(_LOG)
            .where(_LOG.c.position > after, _LOG.c.event_id.in_(applied))
            .order_by(_LOG.c.position)
            .limit(limit)
        )
        return [(row.position, _to_event(row)) for row in session.execute(query)]
    outbox = (
        select(_OUTBOX)
        .where(_OUTBOX.c.seq > after, _OUTBOX.c.event_id.in_(applied))
        .order_by(_OUTBOX.c.seq)
        .limit(limit)
    )
    return [(row.seq, _to_event(row)) for row in session.execute(outbox)]


def outbox_about(session: Session, subject: str) -> list[Event]:
    query = select(_OUTBOX).where(_OUTBOX.c.subject == subject).order_by(_OUTBOX.c.seq)
    return [_to_event(row) for row in session.execute(query)]


def events_about(session: Session, subject: str) -> list[Event]:
    query = select(LogRow).where(LogRow.subject == subject).order_by(LogRow.position)
    return [_to_event(row) for row in session.scalars(query)]


def _to_event(row: LogRow | OutboxRow | Row[Any]) -> Event:
    return Event(
        id=row.event_id,
        type=row.type,
        subject=row.subject,
        time=row.time,
        schema_version=row.schema_version,
        payload=row.payload,
        trace_id=row.trace_id,
        encrypted=row.encrypted,
    )
