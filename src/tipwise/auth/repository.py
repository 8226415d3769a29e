"""All SQL of the auth module."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipwise.auth.models import UserRow


def by_email(session: Session, email: str) -> UserRow | None:
    return session.scalar(select(UserRow).where(UserRow.email == email))


def by_id(session: Session, user_id: UUID) -> UserRow | None:
    return session.get(UserRow, user_id)


def add(session: Session, row: UserRow) -> None:
    session.add(row)
    session.flush()
