"""Use cases of the auth module: accounts, passwords, access tokens, sessions, sign-in throttling."""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

from tipwise.auth import repository
from tipwise.auth.contracts import Account, LoginMethod, Principal, Role, SessionInfo
from tipwise.auth.models import LoginFailureRow, RefreshTokenRow, SessionRow, UserRow
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import ReadSession, WriteSession
from tipwise.kernel.errors import Conflict, NotFound, Unauthorized
from tipwise.kernel.ids import new_id

ISSUER = "tipwise"
AUDIENCE = "tipwise-api"
ALGORITHM = "HS256"
# Tolerated difference between the clocks of the issuing and the verifying process.
CLOCK_SKEW_SECONDS = 60
# How many verified access tokens a process remembers, so a client's next request skips the signature check.
VERIFIED_TOKENS = 10_000


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
        # A token's signature and claims are what they are for good (the secret does not change
        # while the process runs); only the time checks depend on when it is shown, so those run
        # on every call. Decoding an HS256 token costs ~0.1 ms, on the event loop for every request.
        # Only tokens that verified are remembered (an exception is not cached).
        self._decode = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._decode_uncached)

    @property
    def ttl_seconds(self) -> int:
        return int(self._ttl.total_seconds())

    def issue(self, account: Account, *, session_id: UUID) -> str:
        """Return a signed access token for `account`, bound to the server-side session `session_id`."""
        now = self._clock.now()
        claims = {
            "sub": str(account.id),
            "sid": str(session_id),
            "role": account.role.value,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(now.timestamp()),
            "exp": int((now + self._ttl).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Return the principal a token's signature and claims vouch for (its session is checked elsewhere)."""
        principal, expires, issued = self._decode(token)
        # Time claims are checked against the injected clock, not the wall clock.
        now = self._clock.now().timestamp()
        if expires <= now:
            raise Unauthorized("the access token has expired")
        if issued > now + CLOCK_SKEW_SECONDS:
            raise Unauthorized("the access token is not valid yet")
        return principal

    def _decode_uncached(self, token: str) -> tuple[Principal, float, float]:
        """Check a token's signature and claims; return its principal, expiry and issue time."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["sub", "sid", "exp", "iat"], "verify_exp": False, "verify_iat": False},
            )
            principal = Principal(
                user_id=UUID(claims["sub"]),
                role=Role(claims.get("role", Role.USER.value)),
                session_id=UUID(claims["sid"]),
            )
            return principal, float(claims["exp"]), float(claims["iat"])
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise Unauthorized("the access token is not valid") from exc


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of a token: what is stored, so a database leak yields no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class RevokeReason(StrEnum):
    LOGOUT = "logout"
    BY_USER = "revoked_by_user"
    REFRESH_REUSE = "refresh_token_reuse"


class RefreshResult(StrEnum):
    ROTATED = "rotated"
    REUSED = "reused"
    INVALID = "invalid"


@dataclass(frozen=True, kw_only=True)
class Started:
    info: SessionInfo
    account: Account
    refresh_token: str


@dataclass(frozen=True, kw_only=True)
class Refreshed:
    result: RefreshResult
    session_id: UUID | None = None
    account: Account | None = None
    refresh_token: str | None = None


@dataclass(frozen=True, kw_only=True)
class Live:
    """A session found live, with the principal it stands for."""

    principal: Principal
    last_used_at: datetime
    expires_at: datetime


class SessionService:
    """Server-side sessions and their refresh-token families (rotation with reuse detection)."""

    def __init__(self, *, lifetime: timedelta) -> None:
        self._lifetime = lifetime

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def start(
        self,
        session: WriteSession,
        *,
        account_id: UUID,
        method: LoginMethod,
        user_agent: str | None,
        ip: str | None,
        now: datetime,
    ) -> Started:
        user = repository.by_id(session, account_id)
        if user is None:
            raise NotFound("no such account")
        row = SessionRow(
            id=new_id(),
            account_id=account_id,
            method=method.value,
            user_agent=_clip(user_agent, 256),
            ip=_clip(ip, 64),
            created_at=now,
            last_used_at=now,
            expires_at=now + self._lifetime,
            revoked_at=None,
            revoked_reason=None,
        )
        repository.add(session, row)
        token = self._new_refresh_token(session, row.id, now=now)
        return Started(info=_session_info(row), account=_account(user), refresh_token=token)

    def rotate(self, session: WriteSession, *, refresh_token: str, now: datetime) -> Refreshed:
        """Exchange a refresh token for its successor; a used one revokes its session (the caller logs it)."""
        token = repository.refresh_token(session, hash_token(refresh_token))
        if token is None:
            return Refreshed(result=RefreshResult.INVALID)
        row = repository.session_by_id(session, token.session_id, for_update=True)
        if row is None:
            return Refreshed(result=RefreshResult.INVALID)
        if token.rotated_at is not None:
            # Two parties hold this family (one of them stole a token): end it for both.
            if row.revoked_at is None:
                row.revoked_at = now
                row.revoked_reason = RevokeReason.REFRESH_REUSE.value
            return Refreshed(result=RefreshResult.REUSED, session_id=row.id)
        if row.revoked_at is not None or row.expires_at <= now:
            return Refreshed(result=RefreshResult.INVALID, session_id=row.id)
        user = repository.by_id(session, row.account_id)
        if user is None:
            return Refreshed(result=RefreshResult.INVALID, session_id=row.id)
        token.rotated_at = now
        row.last_used_at = now
        successor = self._new_refresh_token(session, row.id, now=now)
        return Refreshed(
            result=RefreshResult.ROTATED, session_id=row.id, account=_account(user), refresh_token=successor
        )

    def live(self, connection: Connection, *, session_id: UUID, now: datetime) -> Live | None:
        """Return the session and its account's current role, or None when it is unknown, revoked or expired."""
        found = repository.session_check(connection, session_id)
        if found is None:
            return None
        account_id, role, last_used_at, expires_at, revoked_at = found
        if revoked_at is not None or expires_at <= now:
            return None
        principal = Principal(user_id=account_id, role=Role(role), session_id=session_id)
        return Live(principal=principal, last_used_at=last_used_at, expires_at=expires_at)

    def touch(self, session: WriteSession, *, session_id: UUID, now: datetime) -> None:
        repository.touch_session(session, session_id, now=now)

    def revoke(
        self, session: WriteSession, *, session_id: UUID, account_id: UUID, reason: RevokeReason, now: datetime
    ) -> bool:
        """Revoke one of `account_id`'s sessions; False when it has no such session (someone else's counts)."""
        row = repository.session_by_id(session, session_id, for_update=True)
        if row is None or row.account_id != account_id:
            return False
        if row.revoked_at is None:
            row.revoked_at = now
            row.revoked_reason = reason.value
        return True

    def active(self, session: ReadSession, *, account_id: UUID, now: datetime) -> list[SessionInfo]:
        return [_session_info(row) for row in repository.active_sessions(session, account_id, now=now)]

    def purge(self, session: WriteSession, *, now: datetime, keep: timedelta) -> int:
        """Delete sessions that ended more than `keep` ago, and failed sign-ins older than that."""
        return repository.purge(session, failures_before=now - keep, sessions_ended_before=now - keep)

    @staticmethod
    def _new_refresh_token(session: WriteSession, session_id: UUID, *, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        repository.add(
            session,
            RefreshTokenRow(token_hash=hash_token(token), session_id=session_id, issued_at=now, rotated_at=None),
        )
        return token


class SessionCache:
    """Remembers, for a bounded time, whether a session is live, so a request needs no query to check it.

    A revocation made through this process's facade drops the entry at once; one made by another
    process is seen here at most `ttl` later. A read of the database that began before a `forget`
    must not cache what it read (it may predate the revocation's commit): take `generation` before
    reading and pass it to `put`. Bounded to `size` entries (least recently used go first).
    """

    def __init__(self, *, ttl: timedelta, size: int = 10_000) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[UUID, tuple[datetime, Live | None]] = OrderedDict()
        # Bumped by every forget; the epoch moves when the counts are cleared, so no read matches them.
        self._forgotten: dict[UUID, int] = {}
        self._epoch = 0
        self._lock = threading.Lock()

    def generation(self, session_id: UUID) -> tuple[int, int]:
        """Return the session's forget count: pass it to `put` with what was read after asking."""
        return self._epoch, self._forgotten.get(session_id, 0)

    def get(self, session_id: UUID, *, now: datetime) -> tuple[bool, Live | None]:
        """Return (hit, live); on a hit, `live` is None for a session known to be over."""
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return False, None
            until, live = entry
            if now >= until:
                del self._entries[session_id]
                return False, None
            self._entries.move_to_end(session_id)
            return True, live

    def put(self, session_id: UUID, live: Live | None, *, now: datetime, generation: tuple[int, int]) -> None:
        """Remember what was read of a session, unless it was forgotten while it was read."""
        if self._ttl <= timedelta(0):
            return
        until = now + self._ttl
        if live is not None:
            until = min(until, live.expires_at)
        with self._lock:
            if (self._epoch, self._forgotten.get(session_id, 0)) != generation:
                return  # revoked or erased meanwhile: the next check reads again
            self._entries[session_id] = (until, live)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, session_id: UUID) -> None:
        with self._lock:
            self._entries.pop(session_id, None)
            if len(self._forgotten) >= self._size:
                self._forgotten.clear()
                self._epoch += 1
            self._forgotten[session_id] = self._forgotten.get(session_id, 0) + 1


class LoginThrottle:
    """Counts failed password sign-ins per email and per client IP in a sliding window, in the database.

    Counting in the database makes the limit hold across every app process of the scaled topology
    without another store; a sign-in already costs an argon2 hash, so a query more does not show.
    """

    def __init__(self, *, per_email: int, per_ip: int, window: timedelta) -> None:
        self._per_email = per_email
        self._per_ip = per_ip
        self._window = window

    @staticmethod
    def email_key(email: str) -> str:
        # Hashed: people type passwords into the email field, and those must not be stored.
        return hash_token(f"email:{normalize_email(email)}")

    @staticmethod
    def ip_key(ip: str) -> str:
        return hash_token(f"ip:{ip}")

    def _limits(self, email: str, ip: str | None) -> dict[str, int]:
        limits = {self.email_key(email): self._per_email}
        if ip:
            limits[self.ip_key(ip)] = self._per_ip
        return limits

    def retry_after(self, session: ReadSession, *, email: str, ip: str | None, now: datetime) -> int | None:
        """Return in how many seconds a sign-in for `email` from `ip` may be tried again, or None if it may now."""
        limits = self._limits(email, ip)
        failures = repository.failures_since(session, list(limits), now - self._window)
        waits = []
        for key, limit in limits.items():
            times = failures[key]
            if len(times) >= limit:
                # Allowed again once enough of the oldest failures leave the window.
                frees_at = times[len(times) - limit] + self._window
                waits.append(max(1, math.ceil((frees_at - now).total_seconds())))
        return max(waits) if waits else None

    def record_failure(self, session: WriteSession, *, email: str, ip: str | None, now: datetime) -> None:
        for key in self._limits(email, ip):
            session.add(LoginFailureRow(key_hash=key, failed_at=now))
        session.flush()

    def reset(self, session: WriteSession, *, email: str) -> None:
        """Forget the email's failures (a successful sign-in); the IP's stay counted."""
        repository.forget_failures(session, self.email_key(email))


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def _session_info(row: SessionRow) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        method=LoginMethod(row.method),
        user_agent=row.user_agent,
        ip=row.ip,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
    )


def _account(row: UserRow) -> Account:
    return Account(id=row.id, email=row.email, role=Role(row.role), created_at=row.created_at)
