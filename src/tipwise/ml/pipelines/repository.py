"""All SQL of the learning pipelines."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipwise.ml.pipelines.models import ModelRow, PendingDecisionRow


def add_pending(session: Session, row: PendingDecisionRow) -> None:
    if session.get(PendingDecisionRow, row.tip_instance_id) is None:
        session.add(row)


def take_pending(session: Session, tip_instance_id: UUID) -> PendingDecisionRow | None:
    row = session.get(PendingDecisionRow, tip_instance_id)
    if row is not None:
        session.delete(row)
    return row


def expired(session: Session, *, decided_before: datetime, limit: int) -> list[UUID]:
    query = (
        select(PendingDecisionRow.tip_instance_id)
        .where(PendingDecisionRow.decided_at < decided_before)
        .order_by(PendingDecisionRow.decided_at, PendingDecisionRow.tip_instance_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def models(session: Session) -> dict[str, ModelRow]:
    return {row.name: row for row in session.scalars(select(ModelRow))}


def save_model(session: Session, row: ModelRow) -> None:
    session.merge(row)
