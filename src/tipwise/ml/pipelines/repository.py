"""All SQL of the learning pipelines."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from tipwise.ml.pipelines.models import ModelRow, PendingDecisionRow


def pending(session: Session, tip_instance_ids: Collection[UUID]) -> dict[UUID, PendingDecisionRow]:
    if not tip_instance_ids:
        return {}
    query = select(PendingDecisionRow).where(PendingDecisionRow.tip_instance_id.in_(tip_instance_ids))
    return {row.tip_instance_id: row for row in session.scalars(query)}


def add_pending(session: Session, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        session.execute(insert(PendingDecisionRow), list(rows))


def remove_pending(session: Session, tip_instance_ids: Collection[UUID]) -> None:
    if tip_instance_ids:
        session.execute(delete(PendingDecisionRow).where(PendingDecisionRow.tip_instance_id.in_(tip_instance_ids)))


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
