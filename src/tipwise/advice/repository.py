"""All SQL of the advice module."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipwise.advice.domain import Category, Condition, Effort, TimeOfDay, Tip
from tipwise.advice.loader import Library
from tipwise.advice.models import TipRow


def upsert_library(session: Session, library: Library, *, now: datetime) -> tuple[int, int]:
    """Make the table match `library`; tips no longer in it are retired. Return (active, retired)."""
    existing = {row.id: row for row in session.scalars(select(TipRow))}
    for tip in library.tips:
        row = existing.pop(tip.id, None) or TipRow(id=tip.id)
        row.title = tip.title
        row.body = tip.body
        row.category = tip.category.value
        row.effort = tip.effort.value
        row.minutes = tip.minutes
        row.times_of_day = sorted(t.value for t in tip.times_of_day)
        row.condition = tip.condition.value if tip.condition else None
        row.active = True
        row.library_version = library.version
        row.updated_at = now
        session.add(row)
    for row in existing.values():
        if row.active:
            row.active = False
            row.updated_at = now
    return len(library.tips), len(existing)


def all_tips(session: Session) -> list[Tip]:
    return [
        Tip(
            id=row.id,
            title=row.title,
            body=row.body,
            category=Category(row.category),
            effort=Effort(row.effort),
            minutes=row.minutes,
            times_of_day=frozenset(TimeOfDay(t) for t in row.times_of_day),
            condition=Condition(row.condition) if row.condition else None,
            active=row.active,
        )
        for row in session.scalars(select(TipRow).order_by(TipRow.id))
    ]
