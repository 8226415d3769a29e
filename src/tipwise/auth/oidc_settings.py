"""Settings of OIDC login (`TIPWISE_OIDC_*`): the providers people may sign in with."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GOOGLE_ISSUER = "https://accounts.google.com"
# Google documents that its ID tokens may carry either form of its issuer.
GOOGLE_EXTRA_ISSUERS = ("accounts.google.com",)


class OidcProviderConfig(BaseModel):
    """One OpenID Connect provider, found through `<issuer>/.well-known/openid-configuration`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="Slug used in the login and callback URLs.")
    title: str | None = Field(default=None, description="Shown on the button; defaults to the name, capitalised.")
    issuer: str = Field(description="The issuer URL exactly as the provider's ID tokens carry it in `iss`.")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = SecretStr("")
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    # Apple answers with an HTML form POSTed to the callback when name or email are requested.
    response_mode: Literal["query", "form_post"] = "query"
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = "client_secret_basic"  # noqa: S105
    extra_issuers: tuple[str, ...] = Field(default=(), description="Other `iss` values this provider's tokens use.")

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("the issuer must be an http(s) URL")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes_include_openid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("the scopes must include 'openid'")
        return value

    @property
    def display_name(self) -> str:
        return self.title or self.name.capitalize()


class OidcSettings(BaseSettings):
    """`TIPWISE_OIDC_PROVIDERS` (a JSON list) and the Google preset (`TIPWISE_OIDC_GOOGLE_CLIENT_ID`/`_SECRET`)."""

    model_config = SettingsConfigDict(env_prefix="TIPWISE_OIDC_", extra="ignore")

    providers: list[OidcProviderConfig] = Field(default_factory=list)
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    # The public origin of this Tipwise (e.g. https://tips.example.org); default: taken from the request.
    public_base_url: str | None = None
    login_ttl_seconds: int = Field(default=600, ge=30, description="How long a started sign-in may take.")
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    http_timeout_seconds: float = Field(default=10.0, gt=0)
    # Refetch the provider's keys on an unknown `kid` at most this often (keys rotate rarely).
    jwks_min_refresh_seconds: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Self:
        names = [provider.name for provider in self.all_providers()]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"OIDC provider names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def all_providers(self) -> list[OidcProviderConfig]:
        """Return the configured providers, the Google preset first when its client id is set."""
        presets: list[OidcProviderConfig] = []
        if self.google_client_id:
            presets.append(
                OidcProviderConfig(
                    name="google",
                    title="Google",
                    issuer=GOOGLE_ISSUER,
                    client_id=self.google_client_id,
                    client_secret=self.google_client_secret or SecretStr(""),
                    extra_issuers=GOOGLE_EXTRA_ISSUERS,
                )
            )
        return presets + list(self.providers)
