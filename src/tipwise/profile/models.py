"""Tables of the profile module."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class PreferencesRow(Base):
    __tablename__ = "profile_preferences"

    user_id: Mapped[UUID] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    muted_categories: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
