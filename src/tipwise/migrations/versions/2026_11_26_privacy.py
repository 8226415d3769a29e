"""privacy: per-person data keys (crypto-shredding), encrypted event payloads, pending decisions by person

Revision ID: 2026_11_26_privacy
Revises: 2026_11_26_auth_sessions
Create Date: 2026-11-26 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_26_privacy"
down_revision: str | None = "2026_11_26_auth_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events_data_key",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_events_data_key")),
    )
    # Events written before this revision stay in clear: they carry no key to shred.
    for table in ("events_outbox", "events_log"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("encrypted", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("ml_pending_decision") as batch:
        batch.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch.create_index(batch.f("ix_ml_pending_decision_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ml_pending_decision") as batch:
        batch.drop_index(batch.f("ix_ml_pending_decision_user_id"))
        batch.drop_column("user_id")
    for table in ("events_log", "events_outbox"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("encrypted")
    op.drop_table("events_data_key")
