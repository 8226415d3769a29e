"""The events module's share of export and erasure: a person's events, and their data key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete
from sqlalchemy.orm import Session

from tipwise.events import repository, shredding
from tipwise.events.bus import open_batch
from tipwise.events.models import LogRow, OutboxRow
from tipwise.kernel.privacy import jsonable


class EventsPersonalData:
    """Exports a person's events in clear; erases them by destroying their data key."""

    name = "events"
    # The user id is the events' `subject`, and the data key's primary key.
    tables = frozenset({"events_outbox", "events_log", "events_data_key"})

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        # The outbox holds every event ever published, whichever bus carried it on.
        opened = open_batch(session, repository.outbox_about(session, str(user_id)), metrics=None, reader="export")
        return {
            "events": [
                {
                    "id": str(event.id),
                    "type": event.type,
                    "time": jsonable(event.time),
                    "schema_version": event.schema_version,
                    "data": jsonable(event.data()),
                }
                for event in opened
            ]
        }

    def erase(self, session: Session, user_id: UUID) -> int:
        """Destroy the person's data key, and drop their events here (copies elsewhere stay unreadable)."""
        subject = str(user_id)
        gone = shredding.erase(session, subject)
        for table in (OutboxRow, LogRow):
            result = session.execute(delete(table).where(table.subject == subject))
            gone += int(getattr(result, "rowcount", 0) or 0)
        return gone
