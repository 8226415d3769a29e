"""Auth: local accounts, password hashing, bearer access tokens."""

from tipwise.auth.contracts import Account, Principal, RegisterRequest, Role
from tipwise.auth.endpoints import build_router, principal_dependency
from tipwise.auth.facade import AuthFacade
from tipwise.auth.settings import AuthSettings

__all__ = [
    "Account",
    "AuthFacade",
    "AuthSettings",
    "Principal",
    "RegisterRequest",
    "Role",
    "build_router",
    "principal_dependency",
]
