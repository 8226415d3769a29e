"""Auth: local accounts, server-side sessions, bearer access tokens, refresh tokens, OIDC sign-in."""

from tipwise.auth.contracts import (
    Account,
    IssuedTokens,
    LoginMethod,
    Principal,
    RegisterRequest,
    Role,
    SessionInfo,
)
from tipwise.auth.endpoints import PUBLIC_ROUTES, build_router, client_of, principal_dependency
from tipwise.auth.facade import AuthFacade
from tipwise.auth.oidc import OidcLoginFailed, OidcProviderInfo, OidcProviders, OidcStart
from tipwise.auth.oidc_settings import OidcProviderConfig, OidcSettings
from tipwise.auth.privacy import AuthPersonalData
from tipwise.auth.settings import AuthSettings

__all__ = [
    "PUBLIC_ROUTES",
    "Account",
    "AuthFacade",
    "AuthPersonalData",
    "AuthSettings",
    "IssuedTokens",
    "LoginMethod",
    "OidcLoginFailed",
    "OidcProviderConfig",
    "OidcProviderInfo",
    "OidcProviders",
    "OidcSettings",
    "OidcStart",
    "Principal",
    "RegisterRequest",
    "Role",
    "SessionInfo",
    "build_router",
    "client_of",
    "principal_dependency",
]
