"""All SQL of the profile module."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.orm import Session

from tipwise.profile.models import PreferencesRow


def get(session: Session, user_id: UUID) -> PreferencesRow | None:
    return session.get(PreferencesRow, user_id)


def add(session: Session, row: PreferencesRow) -> None:
    session.add(row)
