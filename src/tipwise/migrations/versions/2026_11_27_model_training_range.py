"""model training range: the times of the oldest and newest reward each stored model learned

Revision ID: 2026_11_27_model_training_range
Revises: 2026_11_26_privacy
Create Date: 2026-11-27 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_27_model_training_range"
down_revision: str | None = "2026_11_26_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Models stored before this revision have no known range: NULL until they are rebuilt.
    with op.batch_alter_table("ml_model") as batch:
        batch.add_column(sa.Column("trained_from", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("trained_until", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ml_model") as batch:
        batch.drop_column("trained_until")
        batch.drop_column("trained_from")
