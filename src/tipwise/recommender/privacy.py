"""The recommender's share of export and erasure: the person's decisions and reactions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.kernel.privacy import row_dict
from tipwise.recommender.models import FeedbackRow, TipInstanceRow


class RecommenderPersonalData:
    name = "recommender"
    tables = frozenset({"recommender_tip_instance", "recommender_feedback"})

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        decisions = session.scalars(
            select(TipInstanceRow).where(TipInstanceRow.user_id == user_id).order_by(TipInstanceRow.decided_at)
        )
        feedback = session.scalars(
            select(FeedbackRow).where(FeedbackRow.user_id == user_id).order_by(FeedbackRow.created_at)
        )
        return {"decisions": [row_dict(r) for r in decisions], "feedback": [row_dict(r) for r in feedback]}

    def erase(self, session: Session, user_id: UUID) -> int:
        gone = 0
        for table in (FeedbackRow, TipInstanceRow):
            result = session.execute(delete(table).where(table.user_id == user_id))
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone

    @staticmethod
    def forget_before(session: Session, cutoff: datetime) -> int:
        """Delete decisions made before `cutoff` and the reactions to them; return rows gone (retention)."""
        old = select(TipInstanceRow.id).where(TipInstanceRow.decided_at < cutoff)
        feedback = session.execute(delete(FeedbackRow).where(FeedbackRow.tip_instance_id.in_(old)))
        decisions = session.execute(delete(TipInstanceRow).where(TipInstanceRow.decided_at < cutoff))
        return int(getattr(feedback, "rowcount", 0) or 0) + int(getattr(decisions, "rowcount", 0) or 0)
