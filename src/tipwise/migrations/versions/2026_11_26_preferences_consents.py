"""preferences (active and quiet hours, cap, channels) and the consent ledger

Revision ID: 2026_11_26_preferences_consents
Revises: 2026_11_25_policy_promotions
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_26_preferences_consents"
down_revision: str | None = "2026_11_26_event_trace_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profile_preferences") as batch:
        batch.add_column(sa.Column("active_hours", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("quiet_start", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quiet_end", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("frequency_cap_per_day", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("channels", sa.JSON(), nullable=True))
    # Accounts that existed before have no ledger lines, so every purpose reads as not granted
    # until they answer the consent screen: Tipwise never assumes a consent.
    op.create_table(
        "profile_consent",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("wording_version", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_consent")),
    )
    op.create_index("ix_profile_consent_user_id_id", "profile_consent", ["user_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_profile_consent_user_id_id", table_name="profile_consent")
    op.drop_table("profile_consent")
    with op.batch_alter_table("profile_preferences") as batch:
        batch.drop_column("channels")
        batch.drop_column("frequency_cap_per_day")
        batch.drop_column("quiet_end")
        batch.drop_column("quiet_start")
        batch.drop_column("active_hours")
