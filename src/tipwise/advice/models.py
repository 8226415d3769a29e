"""Tables of the advice module."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class TipRow(Base):
    """A tip as seeded from the library; retired tips stay so history can show them."""

    __tablename__ = "advice_tip"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    effort: Mapped[str] = mapped_column(String(16))
    minutes: Mapped[int]
    times_of_day: Mapped[list[str]] = mapped_column(JSON)
    condition: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool]
    library_version: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
