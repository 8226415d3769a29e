"""Use cases of the auth module: accounts, passwords, access tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tipwise.auth import repository
from tipwise.auth.contracts import Account, Principal, Role
from tipwise.auth.models import UserRow
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import ReadSession, WriteSession
from tipwise.kernel.errors import Conflict, NotFound, Unauthorized
from tipwise.kernel.ids import new_id

ISSUER = "tipwise"
AUDIENCE = "tipwise-api"
ALGORITHM = "HS256"
# Tolerated difference between the clocks of the issuing and the verifying process.
CLOCK_SKEW_SECONDS = 60


def normalize_email(email: str) -> str:
    return email.strip().lower()


class AccountService:
    """Registers and authenticates local accounts."""

    def __init__(self, *, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        # Verifying against a real hash when the account is unknown keeps timing uniform.
        self._dummy_hash = hasher.hash("not-a-real-password")

    def hash_password(self, password: str) -> str:
        """Return the argon2id hash of `password` (slow on purpose: call it outside any transaction)."""
        return self._hasher.hash(password)

    def register(self, session: WriteSession, *, email: str, password_hash: str, now: datetime) -> Account:
        email = normalize_email(email)
        if repository.by_email(session, email) is not None:
            raise Conflict("an account with this email already exists", extra={"field": "email"})
        row = UserRow(id=new_id(), email=email, password_hash=password_hash, role=Role.USER.value, created_at=now)
        repository.add(session, row)
        return _account(row)

    def authenticate(self, session: ReadSession, *, email: str, password: str) -> Account:
        row = repository.by_email(session, normalize_email(email))
        stored = row.password_hash if row else None
        try:
            # An unknown account, or one made through an OIDC provider, costs the same time as a wrong password.
            self._hasher.verify(stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            row = None
        if row is None or stored is None:
            raise Unauthorized("email or password is wrong")
        return _account(row)

    def set_role(self, session: WriteSession, *, email: str, role: Role) -> Account:
        row = repository.by_email(session, normalize_email(email))
        if row is None:
            raise NotFound(f"no account with the email {normalize_email(email)!r}")
        row.role = role.value
        return _account(row)

    def get(self, session: ReadSession, user_id: UUID) -> Account | None:
        row = repository.by_id(session, user_id)
        return _account(row) if row else None


class TokenService:
    """Issues and verifies short-lived signed access tokens (JWT, HS256)."""

    def __init__(self, *, secret: str, ttl: timedelta, clock: Clock) -> None:
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    @property
    def ttl_seconds(self) -> int:
        return int(self._ttl.total_seconds())

    def issue(self, account: Account) -> str:
        now = self._clock.now()
        claims = {
            "sub": str(account.id),
            "role": account.role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # Time claims are checked below against the injected clock, not the wall clock.
                options={"require": ["sub", "exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
            now = self._clock.now().timestamp()
            if claims["exp"] <= now:
                raise Unauthorized("the access token has expired")
            if claims["iat"] > now + CLOCK_SKEW_SECONDS:
                raise Unauthorized("the access token is not valid yet")
            return Principal(user_id=UUID(claims["sub"]), role=Role(claims.get("role", Role.USER.value)))
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise Unauthorized("the access token is not valid") from exc


def _account(row: UserRow) -> Account:
    return Account(id=row.id, email=row.email, role=Role(row.role), created_at=row.created_at)
