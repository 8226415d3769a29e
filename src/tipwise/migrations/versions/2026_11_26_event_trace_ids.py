"""event trace ids, Protobuf payloads

Adds `trace_id` to the outbox and the log, and rewrites every stored payload
from JSON to the Protobuf message of its event type (downgrade: back to JSON),
so the log stays replayable across the change.

Revision ID: 2026_11_26_event_trace_ids
Revises: 2026_11_25_policy_promotions
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import orjson
import sqlalchemy as sa
from alembic import op
from google.protobuf.message import DecodeError

from tipwise.events import payloads
from tipwise.events.contracts import payload_type

revision: str = "2026_11_26_event_trace_ids"
down_revision: str | None = "2026_11_26_oidc_identities"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
# (table, its ordering key)
TABLES = (("events_outbox", "seq"), ("events_log", "position"))


def upgrade() -> None:
    for table, _ in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("trace_id", sa.String(length=64), server_default="", nullable=False))
    for table, key in TABLES:
        _rewrite(table, key, _json_to_protobuf)


def downgrade() -> None:
    for table, key in TABLES:
        _rewrite(table, key, _protobuf_to_json)
    for table, _ in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("trace_id")


def _json_to_protobuf(type: str, payload: bytes) -> bytes:
    message = payloads.from_dict(payload_type(type)(), orjson.loads(payload))
    return message.SerializeToString(deterministic=True)


def _protobuf_to_json(type: str, payload: bytes) -> bytes:
    data = payloads.to_dict(payload_type(type).FromString(payload))
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _rewrite(table_name: str, key: str, convert: Callable[[str, bytes], bytes]) -> None:
    """Convert every payload of `table_name`, in batches ordered by `key`; fail naming a row that does not fit."""
    bind = op.get_bind()
    table = sa.table(table_name, sa.column(key), sa.column("type"), sa.column("payload", sa.LargeBinary()))
    after = 0
    while True:
        rows = bind.execute(
            sa.select(table.c[key], table.c.type, table.c.payload)
            .where(table.c[key] > after)
            .order_by(table.c[key])
            .limit(BATCH)
        ).all()
        if not rows:
            return
        updates = []
        for position, type, old in rows:
            try:
                updates.append({"k": position, "p": convert(type, old)})
            except (ValueError, DecodeError) as exc:
                raise RuntimeError(
                    f"{table_name} row {key}={position} ({type}): cannot convert its payload: {exc}"
                ) from exc
        bind.execute(
            sa.update(table).where(table.c[key] == sa.bindparam("k")).values(payload=sa.bindparam("p")), updates
        )
        after = rows[-1][0]
