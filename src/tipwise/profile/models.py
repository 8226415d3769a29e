"""Tables of the profile module."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class PreferencesRow(Base):
    __tablename__ = "profile_preferences"

    user_id: Mapped[UUID] = mapped_column(primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    muted_categories: Mapped[list[str]] = mapped_column(JSON)
    # Weekday -> list of [start, end] local minutes; NULL: active every day, all day.
    active_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    quiet_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quiet_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frequency_cap_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Category -> list of channels; a category left out is in-app only.
    channels: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentRow(Base):
    """One line of the consent ledger: rows are only ever inserted, never updated or deleted here."""

    __tablename__ = "profile_consent"
    __table_args__ = (Index("ix_profile_consent_user_id_id", "user_id", "id"),)

    # Insertion order is the ledger order: the latest row per purpose wins.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[UUID] = mapped_column()
    purpose: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    wording_version: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
