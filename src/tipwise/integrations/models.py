"""Tables of the integrations module: connections (credential sealed, sync cursor) and derived signals."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class ConnectionRow(Base):
    """A person's connected source (an iCalendar feed), with its sealed address and its sync cursor."""

    __tablename__ = "integrations_connection"
    __table_args__ = (Index("ix_integrations_connection_next_sync_at", "next_sync_at"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The feed's host name, shown to the person; the address itself is only stored sealed.
    label: Mapped[str] = mapped_column(String(255))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    # The sync cursor: the validators of the last full read, and how far its intervals reach.
    etag: Mapped[str | None] = mapped_column(String(512), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(64), nullable=True)
    covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_sync_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class SignalRow(Base):
    """A signal derived from a connection: for a calendar, one busy interval (never the event's content)."""

    __tablename__ = "integrations_signal"
    __table_args__ = (Index("ix_integrations_signal_user_id_end_at", "user_id", "end_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[UUID] = mapped_column()
    connection_id: Mapped[UUID] = mapped_column(
        ForeignKey("integrations_connection.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime] = mapped_column(UTCDateTime())
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
