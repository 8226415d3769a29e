"""policy promotions

Revision ID: 2026_11_25_policy_promotions
Revises: 2026_11_25_walking_skeleton
Create Date: 2026-11-25 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_25_policy_promotions"
down_revision: str | None = "2026_11_25_walking_skeleton"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ml_policy_promotion",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("promoted_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("estimator", sa.String(length=16), nullable=False),
        sa.Column("candidate_lower", sa.Double(), nullable=True),
        sa.Column("live_estimate", sa.Double(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ml_policy_promotion")),
    )


def downgrade() -> None:
    op.drop_table("ml_policy_promotion")
