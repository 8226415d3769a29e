"""The auth module as other modules and the gateway see it."""

from __future__ import annotations

from uuid import UUID

from tipwise.auth.contracts import Account, Principal, Role
from tipwise.auth.service import AccountService, TokenService
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database


class AuthFacade:
    """Accounts and tokens; each call is one unit of work."""

    def __init__(self, *, db: Database, accounts: AccountService, tokens: TokenService, clock: Clock) -> None:
        self._db = db
        self._accounts = accounts
        self._tokens = tokens
        self._clock = clock

    @property
    def token_ttl_seconds(self) -> int:
        return self._tokens.ttl_seconds

    def register(self, *, email: str, password: str) -> Account:
        """Create a local account; raises `Conflict` when the email is taken."""
        # Hash first: on SQLite the write transaction holds the only writer lock.
        password_hash = self._accounts.hash_password(password)
        with self._db.write() as session:
            return self._accounts.register(session, email=email, password_hash=password_hash, now=self._clock.now())

    def authenticate(self, *, email: str, password: str) -> Account:
        """Return the account for these credentials; raises `Unauthorized` otherwise."""
        with self._db.read() as session:
            return self._accounts.authenticate(session, email=email, password=password)

    def set_role(self, *, email: str, role: Role) -> Account:
        """Give the account with `email` the role `role`; raises NotFound for an unknown email."""
        with self._db.write() as session:
            return self._accounts.set_role(session, email=email, role=role)

    def account(self, *, user_id: UUID) -> Account | None:
        with self._db.read() as session:
            return self._accounts.get(session, user_id)

    def issue_token(self, *, account: Account) -> str:
        return self._tokens.issue(account)

    def verify_token(self, *, token: str) -> Principal:
        """Return the principal a bearer token stands for; raises `Unauthorized` otherwise."""
        return self._tokens.verify(token)
