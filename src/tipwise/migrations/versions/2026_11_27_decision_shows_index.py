"""recommender: index a person's shows of one tip (the re-check before recording a decision)

Revision ID: 2026_11_27_decision_shows_index
Revises: 2026_11_27_integrations
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "2026_11_27_decision_shows_index"
down_revision: str | None = "2026_11_27_integrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_recommender_tip_instance_user_tip", "recommender_tip_instance", ["user_id", "tip_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_recommender_tip_instance_user_tip", table_name="recommender_tip_instance")
