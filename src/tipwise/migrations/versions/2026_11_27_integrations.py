"""integrations: calendar feed connections (sealed address, sync cursor) and their busy-interval signals

Revision ID: 2026_11_27_integrations
Revises: 2026_11_27_model_training_range
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_27_integrations"
down_revision: str | None = "2026_11_27_model_training_range"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integrations_connection",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=64), nullable=True),
        sa.Column("covered_until", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("added_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("next_sync_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_synced_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations_connection")),
    )
    op.create_index(op.f("ix_integrations_connection_user_id"), "integrations_connection", ["user_id"], unique=False)
    op.create_index(
        "ix_integrations_connection_next_sync_at", "integrations_connection", ["next_sync_at"], unique=False
    )
    op.create_table(
        "integrations_signal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("observed_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["integrations_connection.id"],
            name=op.f("fk_integrations_signal_connection_id_integrations_connection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations_signal")),
    )
    op.create_index(
        op.f("ix_integrations_signal_connection_id"), "integrations_signal", ["connection_id"], unique=False
    )
    op.create_index("ix_integrations_signal_user_id_end_at", "integrations_signal", ["user_id", "end_at"], unique=False)


def downgrade() -> None:
    op.drop_table("integrations_signal")
    op.drop_table("integrations_connection")
