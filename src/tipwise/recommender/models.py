"""Tables of the recommender."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class TipInstanceRow(Base):
    """One decision: what was shown to whom, why, and with what probability."""

    __tablename__ = "recommender_tip_instance"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID]
    tip_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    policy: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(BigInteger)
    feature_spec: Mapped[str] = mapped_column(String(64))
    context_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    propensity: Mapped[float]
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    shadows: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    confidence: Mapped[float]
    explored: Mapped[bool]
    seed: Mapped[int] = mapped_column(BigInteger)
    reaction: Mapped[str | None] = mapped_column(String(16))
    reacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_recommender_tip_instance_user_decided", "user_id", "decided_at"),
        # The re-check before recording reads one person's shows of one tip: without this index it
        # reads every decision row of the person (each one a page or more, with its snapshot).
        Index("ix_recommender_tip_instance_user_tip", "user_id", "tip_id"),
    )


class FeedbackRow(Base):
    """A reaction, keyed for idempotent retries."""

    __tablename__ = "recommender_feedback"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[UUID]
    tip_instance_id: Mapped[UUID] = mapped_column(unique=True)
    reaction: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("user_id", "idempotency_key", name="uq_recommender_feedback_user_key"),)
