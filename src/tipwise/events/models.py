"""Tables of the events module: outbox, durable log, consumer tracking."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, false
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY.
Sequence = BigInteger().with_variant(Integer(), "sqlite")


class OutboxRow(Base):
    __tablename__ = "events_outbox"

    seq: Mapped[int] = mapped_column(Sequence, primary_key=True, autoincrement=True)
    event_id: Mapped[UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    schema_version: Mapped[int]
    trace_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # The payload is sealed with the subject's data key (`events_data_key`).
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    __table_args__ = (Index("ix_events_outbox_unpublished", "published_at", "seq"),)


class LogRow(Base):
    __tablename__ = "events_log"

    position: Mapped[int] = mapped_column(Sequence, primary_key=True, autoincrement=True)
    event_id: Mapped[UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), index=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    schema_version: Mapped[int]
    trace_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    appended_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrackingRow(Base):
    __tablename__ = "events_tracking"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsumerPositionRow(Base):
    __tablename__ = "events_consumer_position"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)


class DataKeyRow(Base):
    """A person's data key: their event payloads are sealed with it; erasure deletes the row.

    Must not outlive the erasure SLA in backups, or shredding does not reach the backups.
    """

    __tablename__ = "events_data_key"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
