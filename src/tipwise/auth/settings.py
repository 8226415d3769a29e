"""Settings of the auth module (`TIPWISE_AUTH_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIPWISE_AUTH_", extra="ignore")

    # Lifetime of an access token (JWT); a refresh token gets the next one.
    token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    # Lifetime of a session (and of its refresh tokens and web cookie), from sign-in.
    session_ttl_days: int = Field(default=30, ge=1, le=365)
    # How long a process trusts its last look at a session: the bound on how late another
    # process sees a revocation (the revoking process sees it at once). 0 checks every request.
    session_check_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Failed password sign-ins allowed per email and per client IP within the window.
    login_failures_per_email: int = Field(default=5, ge=1)
    login_failures_per_ip: int = Field(default=50, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    # argon2id parameters; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65536, ge=64)
