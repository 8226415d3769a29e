"""All SQL of the auth module."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, Row, bindparam, delete, select, update
from sqlalchemy.orm import Session

from tipwise.auth.models import LoginFailureRow, RefreshTokenRow, SessionRow, UserRow


def by_email(session: Session, email: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.email == email))


def by_id(session: Session, user_id: UUID) -> UserRow | None:
    return session.get(UserRow, user_id)


# The account row, read with FOR SHARE where the database knows it (PostgreSQL; SQLite's single
# writer already keeps an erasure out of the caller's write transaction).
_HELD = select(UserRow.id).where(UserRow.id == bindparam("user_id")).with_for_update(read=True)


def hold(session: Session, user_id: UUID) -> bool:
    """Return whether the account exists, holding its row against deletion until the transaction ends.

    Run on the session's Core connection (the same transaction): every decision pays for this
    read, and the session's own execute adds its ORM statement handling (~80 us per call on
    SQLite, about half of the read's CPU time).
    """
    return session.connection().execute(_HELD, {"user_id": user_id}).first() is not None


def add(session: Session, row: UserRow | SessionRow | RefreshTokenRow | LoginFailureRow) -> None:
    session.add(row)
    session.flush()


# Built once: this runs for every request whose session is not cached, and building the statement
# cost as much as running it.
_SESSION_CHECK = (
    select(SessionRow.account_id, UserRow.role, SessionRow.last_used_at, SessionRow.expires_at, SessionRow.revoked_at)
    .join(UserRow, UserRow.id == SessionRow.account_id)
    .where(SessionRow.id == bindparam("session_id"))
)


def session_check(
    connection: Connection, session_id: UUID
) -> Row[UUID, str, datetime, datetime, datetime | None] | None:
    """Return what checking a session needs, in one query: account id and role, last use, expiry, revocation.

    Columns only, on a Core connection: loading the two rows as ORM objects cost more.
    """
    return connection.execute(_SESSION_CHECK, {"session_id": session_id}).first()


def session_by_id(session: Session, session_id: UUID, *, for_update: bool = False) -> SessionRow | None:
    return session.get(SessionRow, session_id, with_for_update=for_update)


def active_sessions(session: Session, account_id: UUID, *, now: datetime) -> Sequence[SessionRow]:
    """Return the account's sessions that are neither revoked nor expired, most recently used first."""
    return session.scalars(
        select(SessionRow)
        .where(SessionRow.account_id == account_id, SessionRow.revoked_at.is_(None), SessionRow.expires_at > now)
        .order_by(SessionRow.last_used_at.desc(), SessionRow.id.desc())
    ).all()


def touch_session(session: Session, session_id: UUID, *, now: datetime) -> None:
    session.execute(update(SessionRow).where(SessionRow.id == session_id).values(last_used_at=now))


def refresh_token(session: Session, token_hash: str) -> RefreshTokenRow | None:
    """Return the refresh token with this hash, locked until the transaction ends (one rotation wins)."""
    return session.get(RefreshTokenRow, token_hash, with_for_update=True)


def failures_since(session: Session, key_hashes: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
    """Return, per key, the times of its failed sign-ins after `since`, oldest first."""
    rows = session.execute(
        select(LoginFailureRow.key_hash, LoginFailureRow.failed_at)
        .where(LoginFailureRow.key_hash.in_(key_hashes), LoginFailureRow.failed_at > since)
        .order_by(LoginFailureRow.failed_at)
    ).all()
    found: dict[str, list[datetime]] = {key: [] for key in key_hashes}
    for key, at in rows:
        found[key].append(at)
    return found


def forget_failures(session: Session, key_hash: str) -> None:
    session.execute(delete(LoginFailureRow).where(LoginFailureRow.key_hash == key_hash))


def purge(session: Session, *, failures_before: datetime, sessions_ended_before: datetime) -> int:
    """Delete failed sign-ins older than `failures_before` and sessions (with their tokens) that ended earlier."""
    failures = session.execute(delete(LoginFailureRow).where(LoginFailureRow.failed_at < failures_before))
    ended = select(SessionRow.id).where(
        (SessionRow.expires_at < sessions_ended_before) | (SessionRow.revoked_at < sessions_ended_before)
    )
    ended_ids = list(session.scalars(ended))
    if ended_ids:
        session.execute(delete(RefreshTokenRow).where(RefreshTokenRow.session_id.in_(ended_ids)))
        session.execute(delete(SessionRow).where(SessionRow.id.in_(ended_ids)))
    return int(getattr(failures, "rowcount", 0) or 0) + len(ended_ids)
