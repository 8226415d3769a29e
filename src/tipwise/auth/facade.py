"""The auth module as other modules and the gateway see it."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from uuid import UUID

from tipwise.auth import oidc_service
from tipwise.auth.contracts import Account, Principal, Role
from tipwise.auth.oidc import (
    OidcLoginFailed,
    OidcProvider,
    OidcProviderInfo,
    OidcProviders,
    OidcStart,
    apple_user_name,
    new_secret,
)
from tipwise.auth.service import AccountService, TokenService
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import NotFound, Unauthorized
from tipwise.kernel.logging import get_logger

log = get_logger(__name__)


class AuthFacade:
    """Accounts and tokens; each call is one unit of work."""

    def __init__(
        self,
        *,
        db: Database,
        accounts: AccountService,
        tokens: TokenService,
        clock: Clock,
        oidc: OidcProviders | None = None,
    ) -> None:
        self._db = db
        self._accounts = accounts
        self._tokens = tokens
        self._clock = clock
        self._oidc = oidc

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
        """Return the principal a bearer token stands for; raises `Unauthorized` otherwise.

        A token of an account that was deleted is refused, though its signature is still valid.
        """
        principal = self._tokens.verify(token)
        with self._db.read() as session:
            if self._accounts.get(session, principal.user_id) is None:
                raise Unauthorized("the account of this token no longer exists")
        return principal

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
        with self._db.write() as session:
            return oidc_service.link_account(
                session,
                identity=identity,
                provider_title=oidc.title,
                display_name=apple_user_name(params.get("user")),
                now=self._clock.now(),
            )

    def _provider(self, name: str) -> OidcProvider:
        found = self._oidc.get(name) if self._oidc else None
        if found is None:
            raise NotFound(f"no sign-in provider named {name!r} is configured")
        return found
