"""All SQL of the profile module."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.orm import Session

from tipwise.profile.models import ConsentRow, PreferencesRow


def get(session: Session, user_id: UUID) -> PreferencesRow | None:
    return session.get(PreferencesRow, user_id)


# Read on a decision whenever the person's cached preferences expired: built once, Core rows.
_PREFERENCES = select(*PreferencesRow.__table__.columns).where(PreferencesRow.user_id == bindparam("user_id"))


def preferences_row(connection: Connection, user_id: UUID) -> Row[Any] | None:
    """Return the person's preferences as a Core row (its attributes named as `PreferencesRow`'s), or None."""
    return connection.execute(_PREFERENCES, {"user_id": user_id}).first()


def add(session: Session, row: PreferencesRow) -> None:
    session.add(row)


def consent_ledger(session: Session, user_id: UUID) -> list[ConsentRow]:
    """Return the person's consent ledger, oldest first."""
    return list(session.scalars(select(ConsentRow).where(ConsentRow.user_id == user_id).order_by(ConsentRow.id)))


# Read on every decision: built once, Core rows, no ORM objects.
_GRANTS = (
    select(ConsentRow.purpose, ConsentRow.granted)
    .where(ConsentRow.user_id == bindparam("user_id"))
    .order_by(ConsentRow.id)
)


def grants(connection: Connection | Session, user_id: UUID) -> list[tuple[str, bool]]:
    """Return the person's ledger as (purpose, granted) pairs, oldest first."""
    rows = connection.execute(_GRANTS, {"user_id": user_id})
    return [(purpose, granted) for purpose, granted in rows]


def append_consent(session: Session, row: ConsentRow) -> None:
    """Append one ledger line (the ledger has no update or delete here: it is append-only)."""
    session.add(row)
    session.flush()
