"""All SQL of the recommender."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Connection, Table, and_, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from tipwise.advice import Category
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.domain.features import SEND_NOTHING
from tipwise.recommender.domain.reactions import Reaction
from tipwise.recommender.models import FeedbackRow, TipInstanceRow

# The two reads of every decision are built once, with bound parameters: building a statement
# from ORM attributes costs more than running it on SQLite.
_SHOW_COLUMNS = (
    TipInstanceRow.tip_id,
    TipInstanceRow.category,
    TipInstanceRow.decided_at,
    TipInstanceRow.reaction,
    TipInstanceRow.reacted_at,
)
_HISTORY_SINCE = select(*_SHOW_COLUMNS).where(
    TipInstanceRow.user_id == bindparam("user_id"),
    TipInstanceRow.tip_id != SEND_NOTHING,
    or_(TipInstanceRow.decided_at >= bindparam("since"), TipInstanceRow.reaction == Reaction.NOT_FOR_ME.value),
)
_SHOWS_OF = select(*_SHOW_COLUMNS).where(
    TipInstanceRow.user_id == bindparam("user_id"), TipInstanceRow.tip_id == bindparam("tip_id")
)


def history_since(session: Session | Connection, *, user_id: UUID, since: datetime) -> list[PastShow]:
    """Return what the person was shown since `since`, plus every tip they marked not-for-me."""
    return _past_shows(_core(session).execute(_HISTORY_SINCE, {"user_id": user_id, "since": since}))


def shows_of(session: Session | Connection, *, user_id: UUID, tip_id: str) -> list[PastShow]:
    """Return every time the person was shown one tip (to re-check it just before recording)."""
    return _past_shows(_core(session).execute(_SHOWS_OF, {"user_id": user_id, "tip_id": tip_id}))


def _core(session: Session | Connection) -> Connection:
    # A session's own execute goes through the ORM's statement handling, even for Core statements.
    return session.connection() if isinstance(session, Session) else session


def _past_shows(rows: Iterable[Any]) -> list[PastShow]:
    return [
        PastShow(
            tip_id=tip_id,
            category=Category(category),
            decided_at=decided_at,
            reaction=Reaction(reaction) if reaction else None,
            reacted_at=reacted_at,
        )
        for tip_id, category, decided_at, reaction, reacted_at in rows
    ]


_INSTANCE_COLUMNS = tuple(column.key for column in TipInstanceRow.__table__.columns)
# On the table, not the entity: an insert of the entity goes through the ORM's bulk-insert path.
_INSERT_INSTANCE = insert(cast(Table, TipInstanceRow.__table__))


def add_instance(session: Session, row: TipInstanceRow | dict[str, Any]) -> None:
    """Write a decision with one Core insert: it is the hot path, and the ORM's bookkeeping costs more.

    `row` is an entity or its column values (the decision path skips building the entity).
    """
    values = row if isinstance(row, dict) else {key: getattr(row, key) for key in _INSTANCE_COLUMNS}
    # Parameters rather than .values(): the compiled statement is cached and reused.
    session.connection().execute(_INSERT_INSTANCE, {key: values.get(key) for key in _INSTANCE_COLUMNS})


def instance_of(session: Session, *, user_id: UUID, tip_instance_id: UUID) -> TipInstanceRow | None:
    row = session.get(TipInstanceRow, tip_instance_id)
    return row if row is not None and row.user_id == user_id else None


def feedback_by_key(session: Session, *, user_id: UUID, idempotency_key: str) -> FeedbackRow | None:
    query = select(FeedbackRow).where(FeedbackRow.user_id == user_id, FeedbackRow.idempotency_key == idempotency_key)
    return session.scalar(query)


def feedback_for(session: Session, *, tip_instance_id: UUID) -> FeedbackRow | None:
    return session.scalar(select(FeedbackRow).where(FeedbackRow.tip_instance_id == tip_instance_id))


def add_feedback(session: Session, row: FeedbackRow) -> None:
    session.add(row)
    session.flush()


def decisions_between(session: Session, *, since: datetime | None, until: datetime | None) -> list[TipInstanceRow]:
    query = select(TipInstanceRow)
    if since is not None:
        query = query.where(TipInstanceRow.decided_at >= since)
    if until is not None:
        query = query.where(TipInstanceRow.decided_at < until)
    return list(session.scalars(query.order_by(TipInstanceRow.decided_at, TipInstanceRow.id)))


def history_page(
    session: Session, *, user_id: UUID, limit: int, before: tuple[datetime, UUID] | None
) -> list[TipInstanceRow]:
    query = select(TipInstanceRow).where(TipInstanceRow.user_id == user_id, TipInstanceRow.tip_id != SEND_NOTHING)
    if before is not None:
        at, instance_id = before
        query = query.where(
            or_(
                TipInstanceRow.decided_at < at,
                and_(TipInstanceRow.decided_at == at, TipInstanceRow.id < instance_id),
            )
        )
    query = query.order_by(TipInstanceRow.decided_at.desc(), TipInstanceRow.id.desc()).limit(limit)
    return list(session.scalars(query))
