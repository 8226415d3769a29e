"""All SQL of the integrations module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.orm import Session

from tipwise.integrations.models import ConnectionRow, SignalRow

BUSY = "busy"


def connections_of(session: Session, user_id: UUID) -> list[ConnectionRow]:
    return list(
        session.scalars(select(ConnectionRow).where(ConnectionRow.user_id == user_id).order_by(ConnectionRow.added_at))
    )


def connection(session: Session, connection_id: UUID) -> ConnectionRow | None:
    return session.get(ConnectionRow, connection_id)


def due(session: Session, *, now: datetime, limit: int) -> list[ConnectionRow]:
    return list(
        session.scalars(
            select(ConnectionRow)
            .where(ConnectionRow.next_sync_at <= now)
            .order_by(ConnectionRow.next_sync_at)
            .limit(limit)
        )
    )


def all_connections(session: Session) -> list[ConnectionRow]:
    return list(session.scalars(select(ConnectionRow).order_by(ConnectionRow.next_sync_at)))


def add_connection(session: Session, row: ConnectionRow) -> None:
    session.add(row)
    session.flush()


def delete_connection(session: Session, connection_id: UUID) -> int:
    session.execute(delete(SignalRow).where(SignalRow.connection_id == connection_id))
    result = session.execute(delete(ConnectionRow).where(ConnectionRow.id == connection_id))
    return int(getattr(result, "rowcount", 0) or 0)


def replace_upcoming(
    session: Session,
    *,
    connection_id: UUID,
    user_id: UUID,
    now: datetime,
    intervals: Sequence[tuple[datetime, datetime]],
) -> None:
    """Replace the connection's intervals that have not ended by `now` with `intervals`; past ones stay."""
    session.execute(delete(SignalRow).where(SignalRow.connection_id == connection_id, SignalRow.end_at > now))
    session.add_all(
        SignalRow(user_id=user_id, connection_id=connection_id, kind=BUSY, start_at=start, end_at=end, observed_at=now)
        for start, end in intervals
    )


def delete_signals_of(session: Session, user_id: UUID) -> int:
    result = session.execute(delete(SignalRow).where(SignalRow.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


# Read on every decision of a person with calendar consent: built once, with bound parameters
# (building a statement from ORM attributes costs more than running it on SQLite).
_BUSY = (
    select(SignalRow.start_at, SignalRow.end_at)
    .select_from(ConnectionRow)
    .outerjoin(
        SignalRow,
        (SignalRow.connection_id == ConnectionRow.id)
        & (SignalRow.end_at > bindparam("start"))
        & (SignalRow.start_at < bindparam("end")),
    )
    .where(ConnectionRow.user_id == bindparam("user_id"), ConnectionRow.covered_until.is_not(None))
)


def busy(
    connection: Connection | Session, *, user_id: UUID, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]] | None:
    """Return the person's busy intervals overlapping [start, end), sorted; None when no calendar was read yet.

    One query (this is on the decision path): each read connection joined with its intervals
    in the window, a row of nulls for a connection with none.
    """
    rows = connection.execute(_BUSY, {"user_id": user_id, "start": start, "end": end}).all()
    if not rows:
        return None
    return sorted((start_at, end_at) for start_at, end_at in rows if start_at is not None)


def upcoming_counts(session: Session, *, user_id: UUID, now: datetime) -> dict[UUID, int]:
    rows = session.execute(
        select(SignalRow.connection_id, func.count())
        .where(SignalRow.user_id == user_id, SignalRow.end_at > now)
        .group_by(SignalRow.connection_id)
    )
    return {row[0]: int(row[1]) for row in rows}
