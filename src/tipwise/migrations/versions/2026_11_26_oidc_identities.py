"""oidc identities: accounts' identities at OIDC providers, sign-ins waiting for an answer

Revision ID: 2026_11_26_oidc_identities
Revises: 2026_11_25_policy_promotions
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tipwise.kernel.db

revision: str = "2026_11_26_oidc_identities"
down_revision: str | None = "2026_11_25_policy_promotions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An account made through an OIDC provider has no password.
    with op.batch_alter_table("auth_user", schema=None) as batch_op:
        batch_op.alter_column("password_hash", existing_type=sa.String(length=256), nullable=True)

    op.create_table(
        "auth_identity",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["auth_user.id"], name=op.f("fk_auth_identity_account_id_auth_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_identity")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_auth_identity_issuer")),
    )
    with op.batch_alter_table("auth_identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_identity_account_id"), ["account_id"], unique=False)

    op.create_table(
        "auth_oidc_login",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("created_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tipwise.kernel.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_auth_oidc_login")),
    )
    with op.batch_alter_table("auth_oidc_login", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_oidc_login_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("auth_oidc_login", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_oidc_login_expires_at"))
    op.drop_table("auth_oidc_login")
    with op.batch_alter_table("auth_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_identity_account_id"))
    op.drop_table("auth_identity")
    # Accounts without a password cannot survive the NOT NULL: they go with their identities.
    op.execute("DELETE FROM auth_user WHERE password_hash IS NULL")
    with op.batch_alter_table("auth_user", schema=None) as batch_op:
        batch_op.alter_column("password_hash", existing_type=sa.String(length=256), nullable=False)
