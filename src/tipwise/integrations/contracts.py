"""Public DTOs of the integrations module."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from tipwise.kernel.errors import Conflict


class ConnectionKind(StrEnum):
    # A calendar published as an iCalendar feed (the "secret address in iCal format" of Google
    # Calendar, Apple iCloud, Outlook, Nextcloud, ...).
    ICAL = "ical"


class SyncStatus(StrEnum):
    OK = "ok"  # the last read brought the feed's current busy times
    NOT_MODIFIED = "not_modified"  # the last read was answered "not modified": the stored times stand
    ERROR = "error"  # the last read failed; `last_error` says why, and the next one is tried on schedule
    PAUSED = "paused"  # calendar signals are not consented: the feed is not read, its signals are deleted


class ConsentRequired(Conflict):
    code = "consent_required"


class IntegrationIn(BaseModel):
    """A calendar to connect: its secret iCal address."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[ConnectionKind.ICAL] = ConnectionKind.ICAL
    url: str = Field(
        min_length=8,
        max_length=2048,
        description="The calendar's secret address in iCal format (https://, http:// or webcal://). "
        "It is stored encrypted and never shown again.",
        examples=["https://calendar.example.com/ical/secret-token/basic.ics"],
    )


class IntegrationOut(BaseModel):
    """A connected calendar; the address is never returned (it is the credential)."""

    id: UUID
    kind: ConnectionKind
    label: str = Field(description="The feed's host name.")
    added_at: datetime
    status: SyncStatus
    last_synced_at: datetime | None = Field(description="When the feed was last read successfully.")
    next_sync_at: datetime
    last_error: str | None
    busy_intervals: int = Field(description="Busy intervals stored from this calendar that have not ended yet.")


class SyncReport(BaseModel):
    """What one round of syncing did."""

    read: int = 0  # feeds answered with a body, parsed and stored
    not_modified: int = 0  # feeds answered "not modified"
    failed: int = 0
    paused: int = 0  # skipped without a request: consent not granted
