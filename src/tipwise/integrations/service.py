"""Use cases of the integrations module; each receives a session and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.orm import Session

from tipwise import events
from tipwise.integrations import repository
from tipwise.integrations.contracts import ConnectionKind, IntegrationOut, SyncStatus
from tipwise.integrations.domain.calendar import BusyInterval
from tipwise.integrations.feeds import Fetched
from tipwise.integrations.models import ConnectionRow
from tipwise.kernel.db import WriteSession
from tipwise.kernel.errors import NotFound

SOURCE = "calendar"
KIND = "busy"


def describe(session: Session, *, user_id: UUID, now: datetime) -> list[IntegrationOut]:
    counts = repository.upcoming_counts(session, user_id=user_id, now=now)
    return [out(row, busy=counts.get(row.id, 0)) for row in repository.connections_of(session, user_id)]


def out(row: ConnectionRow, *, busy: int) -> IntegrationOut:
    return IntegrationOut(
        id=row.id,
        kind=ConnectionKind(row.kind),
        label=row.label,
        added_at=row.added_at,
        status=SyncStatus(row.status),
        last_synced_at=row.last_synced_at,
        next_sync_at=row.next_sync_at,
        last_error=row.last_error,
        busy_intervals=busy,
    )


def owned(session: Session, *, user_id: UUID, connection_id: UUID) -> ConnectionRow:
    """Return the person's connection; NotFound for an unknown one or someone else's (they look alike)."""
    row = repository.connection(session, connection_id)
    if row is None or row.user_id != user_id:
        raise NotFound("no such integration")
    return row


def store_read(
    session: WriteSession,
    *,
    row: ConnectionRow,
    fetched: Fetched,
    intervals: Sequence[BusyInterval],
    now: datetime,
    covered_until: datetime,
    next_sync_at: datetime,
) -> None:
    """Store a full read: the new busy intervals, the cursor, and a `signal.received` event."""
    repository.replace_upcoming(
        session,
        connection_id=row.id,
        user_id=row.user_id,
        now=now,
        intervals=[(i.start, i.end) for i in intervals],
    )
    row.etag, row.last_modified, row.covered_until = fetched.etag, fetched.last_modified, covered_until
    row.last_synced_at, row.next_sync_at = now, next_sync_at
    row.status, row.last_error = SyncStatus.OK.value, None
    events.publish(
        session,
        events.Event.create(
            type=events.SIGNAL_RECEIVED,
            subject=str(row.user_id),
            time=now,
            data={
                "user_id": row.user_id,
                "source": SOURCE,
                "kind": KIND,
                "observed_at": now,
                "values": {
                    "connection_id": str(row.id),
                    "until": covered_until.isoformat(),
                    "intervals": [{"start": i.start.isoformat(), "end": i.end.isoformat()} for i in intervals],
                },
            },
        ),
    )


def store_not_modified(
    session: WriteSession, *, row: ConnectionRow, fetched: Fetched, now: datetime, next_sync_at: datetime
) -> None:
    # A 304 may carry refreshed validators; keep the old ones when it does not.
    row.etag = fetched.etag or row.etag
    row.last_modified = fetched.last_modified or row.last_modified
    row.last_synced_at, row.next_sync_at = now, next_sync_at
    row.status, row.last_error = SyncStatus.NOT_MODIFIED.value, None


def store_failure(session: WriteSession, *, row: ConnectionRow, error: str, next_sync_at: datetime) -> None:
    row.next_sync_at = next_sync_at
    row.status, row.last_error = SyncStatus.ERROR.value, error[:500]


def pause(session: WriteSession, *, user_id: UUID, next_sync_at: datetime | None = None) -> int:
    """Stop using the person's calendar: delete their signals and forget every cursor; return signals gone.

    Without the cursor the next read after a new grant is a full one, so the
    deleted intervals come back from the feed rather than from a "not modified".
    """
    gone = repository.delete_signals_of(session, user_id)
    for row in repository.connections_of(session, user_id):
        row.etag = row.last_modified = row.covered_until = None
        row.status, row.last_error = SyncStatus.PAUSED.value, None
        if next_sync_at is not None:
            row.next_sync_at = next_sync_at
    return gone


def resume_paused(session: WriteSession, *, user_id: UUID, now: datetime) -> None:
    """Read the person's paused feeds at the next sync round (consent was granted again)."""
    for row in repository.connections_of(session, user_id):
        if row.status == SyncStatus.PAUSED.value:
            row.next_sync_at = min(row.next_sync_at, now)


def next_sync(now: datetime, interval: timedelta) -> datetime:
    return now + interval
