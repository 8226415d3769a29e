"""Auth: local accounts, password hashing, server-side sessions, bearer access tokens, refresh tokens."""

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
from tipwise.auth.settings import AuthSettings

__all__ = [
    "PUBLIC_ROUTES",
    "Account",
    "AuthFacade",
    "AuthSettings",
    "IssuedTokens",
    "LoginMethod",
    "Principal",
    "RegisterRequest",
    "Role",
    "SessionInfo",
    "build_router",
    "client_of",
    "principal_dependency",
]
