"""All SQL of the learning pipelines."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import Row, Table, Uuid, any_, bindparam, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tipwise.kernel.sqlite_driver import json_array, json_values, to_driver
from tipwise.ml.pipelines.models import ModelRow, PendingDecisionRow

# A row of `ml_pending_decision`, read with Core (no ORM object per row).
PendingDecision = Row[Any]


_PENDING = cast(Table, PendingDecisionRow.__table__)
# The learner looks up a batch's decisions with one array parameter on PostgreSQL: the statement's
# text is the same for every batch (an `IN` list is not, and psycopg converts each new text again).
_PENDING_POSTGRES = select(_PENDING).where(
    _PENDING.c.tip_instance_id == any_(bindparam("ids", type_=postgresql.ARRAY(Uuid())))
)
# On SQLite the ids travel as one JSON array of their stored form, for the same reason.
_PENDING_SQLITE = select(_PENDING).where(_PENDING.c.tip_instance_id.in_(json_values("ids")))
_STORED_ID = to_driver(_PENDING.c.tip_instance_id.type)


def pending(session: Session, tip_instance_ids: Collection[UUID]) -> dict[UUID, PendingDecision]:
    """Return the stored pending decisions among `tip_instance_ids`, by id."""
    if not tip_instance_ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_PENDING_POSTGRES, {"ids": list(tip_instance_ids)})
    else:
        stored = json_array(_STORED_ID(tip_instance_id) for tip_instance_id in tip_instance_ids)
        rows = session.execute(_PENDING_SQLITE, {"ids": stored})
    return {row.tip_instance_id: row for row in rows}


# On the table, not the entity: an insert of the entity goes through the ORM's bulk-insert path.
_INSERT_PENDING = insert(_PENDING)


def add_pending(session: Session, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        session.connection().execute(_INSERT_PENDING, list(rows))


def remove_pending(session: Session, tip_instance_ids: Collection[UUID]) -> None:
    if tip_instance_ids:
        session.execute(delete(PendingDecisionRow).where(PendingDecisionRow.tip_instance_id.in_(tip_instance_ids)))


def expired(session: Session, *, decided_before: datetime, limit: int) -> list[UUID]:
    query = (
        select(PendingDecisionRow.tip_instance_id)
        .where(PendingDecisionRow.decided_at < decided_before)
        .order_by(PendingDecisionRow.decided_at, PendingDecisionRow.tip_instance_id)
        .limit(limit)
    )
    return list(session.scalars(query))


def models(session: Session) -> dict[str, ModelRow]:
    return {row.name: row for row in session.scalars(select(ModelRow))}


_MODEL = cast(Table, ModelRow.__table__)
_MODEL_COLUMNS = tuple(column.name for column in _MODEL.columns)


def save_model(session: Session, row: ModelRow) -> None:
    """Insert or replace the stored state of `row.name`, in one Core statement.

    Not `session.merge`: that loads the ORM row first, then flushes an UPDATE, and the learner
    saves every model after every batch it learns.
    """
    values = {name: getattr(row, name) for name in _MODEL_COLUMNS}
    statement = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(_MODEL)
    session.execute(
        statement.values(values).on_conflict_do_update(
            index_elements=[_MODEL.c.name], set_={name: values[name] for name in _MODEL_COLUMNS if name != "name"}
        )
    )
