"""The auth module as other modules and the gateway see it."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import UUID

from argon2 import PasswordHasher
from sqlalchemy.exc import IntegrityError

from tipwise.auth import oidc_service, repository
from tipwise.auth.contracts import Account, IssuedTokens, LoginMethod, Principal, Role, SessionInfo
from tipwise.auth.oidc import (
    OidcLoginFailed,
    OidcProvider,
    OidcProviderInfo,
    OidcProviders,
    OidcStart,
    apple_user_name,
    new_secret,
)
from tipwise.auth.privacy import AuthPersonalData
from tipwise.auth.service import (
    AccountService,
    Live,
    LoginThrottle,
    RefreshResult,
    RevokeReason,
    SessionCache,
    SessionService,
    TokenService,
)
from tipwise.auth.settings import AuthSettings
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.errors import NotFound, TooManyRequests, Unauthorized
from tipwise.kernel.logging import get_logger

log = get_logger(__name__)
# `last_used_at` is written at most this often per session, so checking a session stays a read.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Ended sessions and old failed sign-ins are deleted this long after they stop mattering.
KEEP_ENDED = timedelta(days=7)
PURGE_EVERY = timedelta(hours=1)
SESSION_ENDED = "the session has ended; sign in again"


class AuthFacade:
    """Accounts, sessions and tokens; each call is one unit of work."""

    def __init__(
        self,
        *,
        db: Database,
        accounts: AccountService,
        tokens: TokenService,
        sessions: SessionService,
        throttle: LoginThrottle,
        cache: SessionCache,
        clock: Clock,
        oidc: OidcProviders | None = None,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._tokens = tokens
        self._sessions = sessions
        self._throttle = throttle
        self._cache = cache
        self._clock = clock
        self._oidc = oidc
        self._purged_at: datetime | None = None

    @classmethod
    def create(
        cls,
        *,
        db: Database,
        settings: AuthSettings,
        secret_key: str,
        clock: Clock,
        oidc: OidcProviders | None = None,
    ) -> AuthFacade:
        """Wire the auth module from its settings."""
        hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost_kib)
        return cls(
            db=db,
            accounts=AccountService(hasher=hasher),
            tokens=TokenService(secret=secret_key, ttl=timedelta(seconds=settings.token_ttl_seconds), clock=clock),
            sessions=SessionService(lifetime=timedelta(days=settings.session_ttl_days)),
            throttle=LoginThrottle(
                per_email=settings.login_failures_per_email,
                per_ip=settings.login_failures_per_ip,
                window=timedelta(seconds=settings.login_failure_window_seconds),
            ),
            cache=SessionCache(ttl=timedelta(seconds=settings.session_check_cache_seconds)),
            clock=clock,
            oidc=oidc,
        )

    @property
    def token_ttl_seconds(self) -> int:
        return self._tokens.ttl_seconds

    @property
    def session_ttl_seconds(self) -> int:
        return int(self._sessions.lifetime.total_seconds())

    # Accounts

    def register(self, *, email: str, password: str) -> Account:
        """Create a local account; raises `Conflict` when the email is taken."""
        # Hash first: on SQLite the write transaction holds the only writer lock.
        password_hash = self._accounts.hash_password(password)
        with self._db.write() as session:
            return self._accounts.register(session, email=email, password_hash=password_hash, now=self._clock.now())

    def authenticate(self, *, email: str, password: str) -> Account:
        """Return the account for these credentials; raises `Unauthorized` otherwise (not throttled: see `login`)."""
        with self._db.read() as session:
            return self._accounts.authenticate(session, email=email, password=password)

    def set_role(self, *, email: str, role: Role) -> Account:
        """Give the account with `email` the role `role`; raises NotFound for an unknown email."""
        with self._db.write() as session:
            return self._accounts.set_role(session, email=email, role=role)

    def personal_data(self) -> AuthPersonalData:
        """Return this module's export and erasure port; its erasure also ends the cached sessions here."""
        return AuthPersonalData(cache=self._cache)

    def hold_account(self, session: WriteSession, *, user_id: UUID) -> bool:
        """Return whether the account still exists, and keep it so until the caller's transaction ends.

        For writers of another module that must not store anything about a person erased since
        they last looked (a decision planned just before an erasure): call it in the write
        transaction, before writing. On PostgreSQL the account row is held with FOR SHARE, so an
        erasure waits for the transaction and then deletes what it wrote; on SQLite the one
        writer at a time does the same.
        """
        return repository.hold(session, user_id)

    def account(self, *, user_id: UUID) -> Account | None:
        with self._db.read() as session:
            return self._accounts.get(session, user_id)

    # Signing in

    def login(self, *, email: str, password: str, user_agent: str | None = None, ip: str | None = None) -> IssuedTokens:
        """Sign in with a password and start a session.

        Raises `TooManyRequests` while the email or the client IP has too many recent failures
        (even for the right password), `Unauthorized` for wrong credentials.
        """
        now = self._clock.now()
        with self._db.read() as session:
            retry_after = self._throttle.retry_after(session, email=email, ip=ip, now=now)
        if retry_after is not None:
            log.warning("login_throttled", ip=ip, retry_after=retry_after)
            raise TooManyRequests(
                f"too many failed sign-ins; try again in {retry_after} seconds", retry_after=retry_after
            )
        try:
            account = self.authenticate(email=email, password=password)
        except Unauthorized:
            with self._db.write() as session:
                self._throttle.record_failure(session, email=email, ip=ip, now=self._clock.now())
            log.info("login_failed", ip=ip)
            raise
        with self._db.write() as session:
            self._throttle.reset(session, email=email)
        return self.start_session(account.id, method=LoginMethod.PASSWORD, user_agent=user_agent, ip=ip)

    def start_session(
        self, account_id: UUID, *, method: str, user_agent: str | None = None, ip: str | None = None
    ) -> IssuedTokens:
        """Start a server-side session for an account that has just proven who it is.

        Every way of signing in ends here (password: `login`; OIDC: the identity callback), so each
        session is listed under `GET /v1/me/sessions` and can be revoked. `method` is a `LoginMethod`
        value; raises `NotFound` for an unknown account.
        """
        login_method = LoginMethod(method)
        with self._db.write() as session:
            started = self._sessions.start(
                session,
                account_id=account_id,
                method=login_method,
                user_agent=user_agent,
                ip=ip,
                now=self._clock.now(),
            )
        log.info("session_started", account_id=str(account_id), session_id=str(started.info.id), method=method)
        return self._issue(started.account, session_id=started.info.id, refresh_token=started.refresh_token)

    def refresh(self, *, refresh_token: str) -> IssuedTokens:
        """Exchange a refresh token for a new access token and a new refresh token.

        The old refresh token stops working. Presenting one that was already exchanged revokes
        the whole session (whoever holds its tokens is signed out) and raises `Unauthorized`.
        """
        with self._db.write() as session:
            outcome = self._sessions.rotate(session, refresh_token=refresh_token, now=self._clock.now())
        if outcome.result is RefreshResult.REUSED and outcome.session_id is not None:
            self._cache.forget(outcome.session_id)
            log.warning("security.refresh_token_reused", session_id=str(outcome.session_id), action="session_revoked")
            raise Unauthorized("this refresh token was already used; the session is revoked, sign in again")
        if (
            outcome.result is not RefreshResult.ROTATED
            or outcome.account is None
            or outcome.session_id is None
            or outcome.refresh_token is None
        ):
            raise Unauthorized("the refresh token is not valid")
        return self._issue(outcome.account, session_id=outcome.session_id, refresh_token=outcome.refresh_token)

    def _issue(self, account: Account, *, session_id: UUID, refresh_token: str) -> IssuedTokens:
        return IssuedTokens(
            access_token=self._tokens.issue(account, session_id=session_id),
            refresh_token=refresh_token,
            expires_in=self._tokens.ttl_seconds,
            session_id=session_id,
            account_id=account.id,
            role=account.role,
        )

    # Checking a request

    def verify_token(self, *, token: str) -> Principal:
        """Return the principal a bearer token stands for; raises `Unauthorized` otherwise.

        The token's session must still be live: a revoked session's tokens stop working at once in
        this process, and within `session_check_cache_seconds` in any other. The role is the
        account's current one.
        """
        claimed = self._tokens.verify(token)
        principal = self.session_principal(session_id=claimed.session_id) if claimed.session_id else None
        if principal is None or principal.user_id != claimed.user_id:
            raise Unauthorized(SESSION_ENDED)
        return principal

    @property
    def reads_locally(self) -> bool:
        """True when the database is a local file (SQLite): a read costs less than a hop to a thread."""
        return self._db.is_sqlite

    def cached_principal(self, *, token: str, read: bool = False) -> Principal | None:
        """Return the principal of a bearer token without writing; None: ask `verify_token`.

        Without `read`, only this process's session cache is consulted, so no database is read.
        With `read`, a session missing from the cache is read too (on SQLite the event loop may do
        that: see `reads_locally`); None then means only that the session's last use is due to be
        written, which `verify_token` does. Raises `Unauthorized` like `verify_token` for a bad
        token or a session that has ended.
        """
        claimed = self._tokens.verify(token)
        if not claimed.session_id:
            raise Unauthorized(SESSION_ENDED)
        now = self._clock.now()
        hit, live = self._cache.get(claimed.session_id, now=now)
        if not hit:
            if not read:
                return None
            generation = self._cache.generation(claimed.session_id)
            live = self._read_live(claimed.session_id, now=now)
            if live is not None and now - live.last_used_at >= LAST_USED_RESOLUTION:
                return None
            self._cache.put(claimed.session_id, live, now=now, generation=generation)
        if live is None or live.principal.user_id != claimed.user_id:
            raise Unauthorized(SESSION_ENDED)
        return live.principal

    def session_principal(self, *, session_id: UUID) -> Principal | None:
        """Return who is signed in through this session, or None when it is unknown, revoked or expired."""
        now = self._clock.now()
        hit, live = self._cache.get(session_id, now=now)
        if not hit:
            live = self._look_up(session_id)
        return live.principal if live is not None else None

    def _read_live(self, session_id: UUID, *, now: datetime) -> Live | None:
        with self._db.read_connection() as connection:
            return self._sessions.live(connection, session_id=session_id, now=now)

    def _look_up(self, session_id: UUID) -> Live | None:
        now = self._clock.now()
        generation = self._cache.generation(session_id)
        live = self._read_live(session_id, now=now)
        if live is not None and now - live.last_used_at >= LAST_USED_RESOLUTION:
            with self._db.write() as session:
                self._sessions.touch(session, session_id=session_id, now=now)
        self._cache.put(session_id, live, now=now, generation=generation)
        return live

    # Managing sessions

    def sessions(self, *, user_id: UUID) -> list[SessionInfo]:
        """Return the account's live sessions, most recently used first."""
        with self._db.read() as session:
            return self._sessions.active(session, account_id=user_id, now=self._clock.now())

    def revoke_session(self, *, user_id: UUID, session_id: UUID) -> None:
        """Revoke one of the account's sessions; `NotFound` when it has none with this id."""
        self._revoke(user_id=user_id, session_id=session_id, reason=RevokeReason.BY_USER)

    def logout(self, *, principal: Principal) -> None:
        """End the session the principal came through."""
        if principal.session_id is None:
            raise Unauthorized(SESSION_ENDED)
        self._revoke(user_id=principal.user_id, session_id=principal.session_id, reason=RevokeReason.LOGOUT)

    def _revoke(self, *, user_id: UUID, session_id: UUID, reason: RevokeReason) -> None:
        with self._db.write() as session:
            found = self._sessions.revoke(
                session, session_id=session_id, account_id=user_id, reason=reason, now=self._clock.now()
            )
        if not found:
            raise NotFound("no such session")
        self._cache.forget(session_id)
        log.info("session_revoked", account_id=str(user_id), session_id=str(session_id), reason=reason.value)

    def purge(self) -> int:
        """Delete sessions that ended a while ago and old failed sign-ins, at most hourly (a periodic job).

        Returns 0: nothing here publishes events, so the worker need not drain again.
        """
        now = self._clock.now()
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return 0
        with self._db.write() as session:
            deleted = self._sessions.purge(session, now=now, keep=KEEP_ENDED)
        self._purged_at = now
        if deleted:
            log.info("auth_purged", rows=deleted)
        return 0

    # -- OIDC login -----------------------------------------------------------------------------

    def oidc_providers(self) -> list[OidcProviderInfo]:
        """Return the OIDC providers people may sign in with, in configuration order."""
        return [OidcProviderInfo(name=p.name, title=p.title) for p in (self._oidc or [])]

    @property
    def oidc_public_base_url(self) -> str | None:
        """Return the configured public origin for callback URLs, or None to take it from the request."""
        return self._oidc.public_base_url if self._oidc else None

    def begin_oidc_login(self, *, provider: str, redirect_uri: str) -> OidcStart:
        """Start a sign-in at `provider`: remember state, nonce and PKCE verifier; return where to go."""
        oidc = self._provider(provider)
        state, nonce, verifier = new_secret(), new_secret(), new_secret()
        try:
            url = oidc.authorization_url(redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier)
        except OidcLoginFailed as exc:
            log.warning("oidc_login_refused", provider=provider, reason=exc.reason, detail=exc.detail)
            raise
        ttl = self._oidc.login_ttl if self._oidc else None
        if ttl is None:
            raise NotFound(f"no sign-in provider named {provider!r} is configured")
        now = self._clock.now()
        with self._db.write() as session:
            oidc_service.start_login(
                session, provider=provider, state=state, nonce=nonce, code_verifier=verifier, now=now, ttl=ttl
            )
        form_post = oidc.config.response_mode == "form_post"
        return OidcStart(url=url, state=state, form_post=form_post, ttl_seconds=int(ttl.total_seconds()))

    def sign_in_with_oidc(
        self, *, provider: str, params: Mapping[str, str], browser_state: str | None, redirect_uri: str
    ) -> Account:
        """Finish a sign-in from the provider's answer; return the account to sign in, as `authenticate` does.

        `params` are the callback's query or form fields; `browser_state` is the state this browser kept
        when it started. Raises `OidcLoginFailed` (with a `reason`) for anything wrong, logged, token never.
        """
        oidc = self._provider(provider)
        try:
            linked = self._finish_oidc_login(
                oidc, params=params, browser_state=browser_state, redirect_uri=redirect_uri
            )
        except OidcLoginFailed as exc:
            log.warning("oidc_login_refused", provider=provider, reason=exc.reason, detail=exc.detail)
            raise
        log.info("oidc_login", provider=provider, account=str(linked.account.id), how=linked.how)
        return linked.account

    def _finish_oidc_login(
        self, oidc: OidcProvider, *, params: Mapping[str, str], browser_state: str | None, redirect_uri: str
    ) -> oidc_service.LinkedAccount:
        state = params.get("state")
        error = params.get("error")
        pending: oidc_service.PendingLogin | None = None
        if state:
            with self._db.write() as session:
                try:
                    pending = oidc_service.take_login(session, provider=oidc.name, state=state, now=self._clock.now())
                except OidcLoginFailed:
                    if not error:
                        raise
        if error:
            description = params.get("error_description")
            raise OidcLoginFailed(
                f"{oidc.title} did not sign you in: {error}" + (f" ({description})" if description else ""),
                reason="provider_error",
            )
        if not state or pending is None:
            raise OidcLoginFailed(
                f"the answer from {oidc.title} carries no state; start signing in again", reason="state_missing"
            )
        # The state must come back to the browser that started the sign-in, or this is login CSRF.
        if browser_state is None or not secrets.compare_digest(browser_state.encode(), state.encode()):
            raise OidcLoginFailed(
                "this sign-in was started in another browser (or its cookie was lost); start signing in again",
                reason="browser_mismatch",
            )
        code = params.get("code")
        if not code:
            raise OidcLoginFailed(f"the answer from {oidc.title} carries no code", reason="code_missing")
        id_token = oidc.exchange_code(code=code, redirect_uri=redirect_uri, code_verifier=pending.code_verifier)
        identity = oidc.validate_id_token(id_token, nonce=pending.nonce)
        display_name = apple_user_name(params.get("user"))

        def link() -> oidc_service.LinkedAccount:
            with self._db.write() as session:
                return oidc_service.link_account(
                    session,
                    identity=identity,
                    provider_title=oidc.title,
                    display_name=display_name,
                    now=self._clock.now(),
                )

        try:
            return link()
        except IntegrityError:
            # A simultaneous first sign-in of the same identity (two tabs) created the account or
            # the link a moment ago: now it exists, and this sign-in finds it.
            return link()

    def _provider(self, name: str) -> OidcProvider:
        found = self._oidc.get(name) if self._oidc else None
        if found is None:
            raise NotFound(f"no sign-in provider named {name!r} is configured")
        return found
