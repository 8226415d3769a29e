"""Tables of the learning pipelines."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class PendingDecisionRow(Base):
    """A decision waiting for its reaction or for the reward wait to expire."""

    __tablename__ = "ml_pending_decision"

    tip_instance_id: Mapped[UUID] = mapped_column(primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    feature_spec: Mapped[str] = mapped_column(String(64))
    shared: Mapped[dict[str, float]] = mapped_column(JSON)
    action: Mapped[dict[str, float]] = mapped_column(JSON)
    propensity: Mapped[float]
    # Whom the decision was for (the event's subject); NULL for rows from before it was kept.
    user_id: Mapped[UUID | None] = mapped_column(default=None, index=True)


class ModelRow(Base):
    """The learned state of one named policy; written with the tracking rows it reflects."""

    __tablename__ = "ml_model"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    feature_spec: Mapped[str] = mapped_column(String(64))
    reward_map_version: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The training range: the times of the oldest and newest reward in `state`; NULL before the first,
    # and for rows from before the range was kept (until the next rebuild).
    trained_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    trained_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PolicyPromotionRow(Base):
    """A policy made live, with the evidence it was promoted on; the newest row names the live policy."""

    __tablename__ = "ml_policy_promotion"

    # SQLite only autoincrements an INTEGER PRIMARY KEY; the id orders promotions made in the same instant.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    policy: Mapped[str] = mapped_column(String(64))
    promoted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # True when the gate refused and `--force` overrode it.
    forced: Mapped[bool]
    estimator: Mapped[str] = mapped_column(String(16))
    # Null when a forced promotion had no evaluable log to compare on.
    candidate_lower: Mapped[float | None]
    live_estimate: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(String(500))
