"""Public DTOs of the auth module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class Role(StrEnum):
    USER = "user"
    OPERATOR = "operator"


class LoginMethod(StrEnum):
    """How a session was signed in."""

    PASSWORD = "password"  # noqa: S105 - a login method, not a secret
    OIDC = "oidc"


@dataclass(frozen=True, kw_only=True)
class Principal:
    """The authenticated caller of a request, and the server-side session it came through."""

    user_id: UUID
    role: Role
    session_id: UUID | None = None


@dataclass(frozen=True, kw_only=True)
class IssuedTokens:
    """What a sign-in or a refresh hands to the client; the refresh token is shown once and stored hashed."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: UUID
    account_id: UUID
    role: Role


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    """A live session of an account, as its owner sees it."""

    id: UUID
    method: LoginMethod
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class Account:
    id: UUID
    email: str
    role: Role
    created_at: datetime


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: str = Field(min_length=8, max_length=256, description="At least 8 characters.")


class AccountOut(BaseModel):
    id: UUID
    email: str
    role: Role
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(
        description="Single use: `POST /v1/auth/refresh` exchanges it for new tokens. Presenting a used one again "
        "ends the session."
    )

    @classmethod
    def of(cls, tokens: IssuedTokens) -> TokenOut:
        return cls(access_token=tokens.access_token, expires_in=tokens.expires_in, refresh_token=tokens.refresh_token)


class SessionOut(BaseModel):
    id: UUID
    method: LoginMethod
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool = Field(description="True for the session of the token making this request.")

    @classmethod
    def of(cls, info: SessionInfo, *, current: UUID | None) -> SessionOut:
        return cls(
            id=info.id,
            method=info.method,
            user_agent=info.user_agent,
            ip=info.ip,
            created_at=info.created_at,
            last_used_at=info.last_used_at,
            expires_at=info.expires_at,
            current=info.id == current,
        )
