"""All SQL of the learning pipelines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, select
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


def take_expired(session: Session, *, decided_before: datetime, limit: int) -> Sequence[PendingDecisionRow]:
    query = (
        select(PendingDecisionRow)
        .where(PendingDecisionRow.decided_at < decided_before)
        .order_by(PendingDecisionRow.decided_at)
        .limit(limit)
    )
    rows = session.scalars(query).all()
    if rows:
        session.execute(
            delete(PendingDecisionRow).where(PendingDecisionRow.tip_instance_id.in_([r.tip_instance_id for r in rows]))
        )
    return rows


def models(session: Session) -> dict[str, ModelRow]:
    return {row.name: row for row in session.scalars(select(ModelRow))}


def save_model(session: Session, row: ModelRow) -> None:
    session.merge(row)
