"""All SQL of the profile module."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipwise.profile.models import ConsentRow, PreferencesRow


def get(session: Session, user_id: UUID) -> PreferencesRow | None:
    return session.get(PreferencesRow, user_id)


def add(session: Session, row: PreferencesRow) -> None:
    session.add(row)


def consent_ledger(session: Session, user_id: UUID) -> list[ConsentRow]:
    """Return the person's consent ledger, oldest first."""
    return list(session.scalars(select(ConsentRow).where(ConsentRow.user_id == user_id).order_by(ConsentRow.id)))


def append_consent(session: Session, row: ConsentRow) -> None:
    """Append one ledger line (the ledger has no update or delete here: it is append-only)."""
    session.add(row)
    session.flush()
