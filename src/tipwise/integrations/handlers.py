"""Subscribers of the integrations module to other modules' events."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from tipwise import events
from tipwise.integrations import service
from tipwise.kernel.db import WriteSession
from tipwise.kernel.logging import get_logger
from tipwise.profile import Purpose

log = get_logger(__name__)


class ConsentWatcher:
    """Applies `consent.changed` for calendar signals: a withdrawal deletes the person's calendar signals.

    Exactly once through the bus's tracking (the effect commits with it), and
    harmless when replayed: deleting signals twice deletes nothing more, and a
    later grant in the log sets the feeds to be read again.
    """

    name = "integrations.consent"
    event_types = frozenset({events.CONSENT_CHANGED})

    def apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        for event in batch:
            data = event.data()
            if data["purpose"] != Purpose.CALENDAR_SIGNALS.value:
                continue
            user_id = UUID(data["user_id"])
            if data["granted"]:
                service.resume_paused(session, user_id=user_id, now=event.time)
            else:
                gone = service.pause(session, user_id=user_id)
                log.info("calendar_signals_withdrawn", signals_deleted=gone)

    def committed(self) -> None:
        return None

    def aborted(self) -> None:
        return None
