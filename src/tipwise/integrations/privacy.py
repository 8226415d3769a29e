"""The integrations module's share of export and erasure, and of the retention job.

The export lists each connected calendar (its host, status and sync times)
and every stored busy interval, but not the feed's address: that address is
a credential to the whole calendar, the person has it from their calendar
provider, and an export file is easily passed around.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.integrations.models import ConnectionRow, SignalRow
from tipwise.kernel.privacy import row_dict

# Never exported: the sealed address, and the cursor values a feed's server chose.
_UNEXPORTED = frozenset({"secret", "etag", "last_modified"})


class IntegrationsPersonalData:
    name = "integrations"
    tables = frozenset({"integrations_connection", "integrations_signal"})

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        connections = session.scalars(
            select(ConnectionRow).where(ConnectionRow.user_id == user_id).order_by(ConnectionRow.added_at)
        )
        signals = session.scalars(select(SignalRow).where(SignalRow.user_id == user_id).order_by(SignalRow.start_at))
        return {
            "connections": [
                {key: value for key, value in row_dict(r).items() if key not in _UNEXPORTED} for r in connections
            ],
            "signals": [row_dict(r) for r in signals],
        }

    def erase(self, session: Session, user_id: UUID) -> int:
        gone = 0
        for table in (SignalRow, ConnectionRow):
            result = session.execute(delete(table).where(table.user_id == user_id))
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone

    @staticmethod
    def forget_before(session: Session, cutoff: datetime) -> int:
        """Delete signals that ended before `cutoff` (the retention window); return how many."""
        result = session.execute(delete(SignalRow).where(SignalRow.end_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
