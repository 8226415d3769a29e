"""auth sessions: server-side sessions, rotated refresh tokens, failed sign-ins

Revision ID: 2026_11_26_auth_sessions
Revises: 2026_11_26_preferences_consents
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_26_auth_sessions"
down_revision: str | None = "2026_11_26_preferences_consents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_session",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["auth_user.id"], name=op.f("fk_auth_session_account_id_auth_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_session")),
    )
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_session_account_id"), ["account_id"], unique=False)

    op.create_table(
        "auth_refresh_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_session.id"],
            name=op.f("fk_auth_refresh_token_session_id_auth_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_refresh_token")),
    )
    with op.batch_alter_table("auth_refresh_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_refresh_token_session_id"), ["session_id"], unique=False)

    op.create_table(
        "auth_login_failure",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("failed_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_login_failure")),
    )
    with op.batch_alter_table("auth_login_failure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_login_failure_key_hash"), ["key_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_login_failure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_login_failure_key_hash"))
    op.drop_table("auth_login_failure")
    with op.batch_alter_table("auth_refresh_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_refresh_token_session_id"))
    op.drop_table("auth_refresh_token")
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_session_account_id"))
    op.drop_table("auth_session")
