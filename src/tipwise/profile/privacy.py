"""The profile module's share of export and erasure: preferences and the consent ledger."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.kernel.privacy import row_dict
from tipwise.profile.models import ConsentRow, PreferencesRow


class ProfilePersonalData:
    name = "profile"
    tables = frozenset({"profile_preferences", "profile_consent"})

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        preferences = session.scalars(select(PreferencesRow).where(PreferencesRow.user_id == user_id))
        consents = session.scalars(select(ConsentRow).where(ConsentRow.user_id == user_id).order_by(ConsentRow.id))
        return {"preferences": [row_dict(r) for r in preferences], "consents": [row_dict(r) for r in consents]}

    def erase(self, session: Session, user_id: UUID) -> int:
        # The consent ledger is append-only for the person's own changes; erasure is the exception.
        gone = 0
        for table in (ConsentRow, PreferencesRow):
            result = session.execute(delete(table).where(table.user_id == user_id))
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone
