"""Auth: local accounts, password hashing, bearer access tokens, sign-in through OIDC providers."""

from tipwise.auth.contracts import Account, Principal, RegisterRequest, Role
from tipwise.auth.endpoints import build_router, principal_dependency
from tipwise.auth.facade import AuthFacade
from tipwise.auth.oidc import OidcLoginFailed, OidcProviderInfo, OidcProviders, OidcStart
from tipwise.auth.oidc_settings import OidcProviderConfig, OidcSettings
from tipwise.auth.privacy import AuthPersonalData
from tipwise.auth.settings import AuthSettings

__all__ = [
    "Account",
    "AuthFacade",
    "AuthPersonalData",
    "AuthSettings",
    "OidcLoginFailed",
    "OidcProviderConfig",
    "OidcProviderInfo",
    "OidcProviders",
    "OidcSettings",
    "OidcStart",
    "Principal",
    "RegisterRequest",
    "Role",
    "build_router",
    "principal_dependency",
]
