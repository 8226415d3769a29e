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


@dataclass(frozen=True, kw_only=True)
class Principal:
    """The authenticated caller of a request."""

    user_id: UUID
    role: Role


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
    expires_in: int = Field(description="Seconds until the token expires.")
