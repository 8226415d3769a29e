"""Tables of the auth module."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tipwise.kernel.db import Base, UTCDateTime


class UserRow(Base):
    __tablename__ = "auth_user"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # None for an account created through an OIDC provider: it has no password to sign in with.
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SessionRow(Base):
    """A signed-in device or browser: what the person sees under "sessions" and can revoke."""

    __tablename__ = "auth_session"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    account_id: Mapped[UUID] = mapped_column(ForeignKey("auth_user.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class RefreshTokenRow(Base):
    """One refresh token of a session's family, stored as the SHA-256 of the token (never the token)."""

    __tablename__ = "auth_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[UUID] = mapped_column(ForeignKey("auth_session.id", ondelete="CASCADE"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when this token was exchanged for its successor; presenting it again is reuse.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginFailureRow(Base):
    """A failed password sign-in, counted per email and per client IP (both as SHA-256 keys)."""

    __tablename__ = "auth_login_failure"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), index=True)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdentityRow(Base):
    """An account's identity at an OIDC provider: the pair (issuer, subject) names one person there."""

    __tablename__ = "auth_identity"
    __table_args__ = (UniqueConstraint("issuer", "subject"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[UUID] = mapped_column(ForeignKey("auth_user.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    # Apple tells the name only on the first sign-in; kept for when the profile learns names.
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OidcLoginRow(Base):
    """A started OIDC sign-in, waiting for the provider's answer; deleted when that answer arrives."""

    __tablename__ = "auth_oidc_login"

    # SHA-256 of the `state` sent to the provider: the state itself is never stored.
    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    nonce: Mapped[str] = mapped_column(String(128))
    code_verifier: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
