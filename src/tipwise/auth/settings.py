"""Settings of the auth module (`TIPWISE_AUTH_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIPWISE_AUTH_", extra="ignore")

    token_ttl_seconds: int = Field(default=3600, ge=60)
    # argon2id parameters; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65536, ge=64)
