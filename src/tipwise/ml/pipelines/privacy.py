"""The learner's share of export and erasure: the person's decisions waiting for a reward.

Their contribution to the shared models is removed by a rebuild when the learner applies
`user.deleted` (see `Learner.apply`), not here: the rebuild must run after their key is gone.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.kernel.privacy import row_dict
from tipwise.ml.pipelines.models import PendingDecisionRow


class LearnerPersonalData:
    name = "learner"
    tables = frozenset({"ml_pending_decision"})

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        rows = session.scalars(
            select(PendingDecisionRow)
            .where(PendingDecisionRow.user_id == user_id)
            .order_by(PendingDecisionRow.decided_at)
        )
        return {"pending_decisions": [row_dict(r) for r in rows]}

    def erase(self, session: Session, user_id: UUID) -> int:
        result = session.execute(delete(PendingDecisionRow).where(PendingDecisionRow.user_id == user_id))
        return int(getattr(result, "rowcount", 0) or 0)
