"""Use cases of OIDC login: remember a started sign-in, take it back once, link the identity to an account."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from tipwise.auth import oidc_repository, repository
from tipwise.auth.contracts import Account, Role
from tipwise.auth.models import IdentityRow, OidcLoginRow, UserRow
from tipwise.auth.oidc import OidcLoginFailed, VerifiedIdentity
from tipwise.auth.service import normalize_email
from tipwise.kernel.db import WriteSession
from tipwise.kernel.ids import new_id


@dataclass(frozen=True, kw_only=True)
class PendingLogin:
    provider: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True, kw_only=True)
class LinkedAccount:
    account: Account
    # "existing" identity, "linked" to an account with the same verified email, or a "created" account.
    how: str


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def start_login(
    session: WriteSession, *, provider: str, state: str, nonce: str, code_verifier: str, now: datetime, ttl: timedelta
) -> None:
    """Remember a sign-in sent to `provider`, so that its answer can be checked once."""
    oidc_repository.delete_expired_logins(session, now=now)
    oidc_repository.add_login(
        session,
        OidcLoginRow(
            state_hash=state_hash(state),
            provider=provider,
            nonce=nonce,
            code_verifier=code_verifier,
            created_at=now,
            expires_at=now + ttl,
        ),
    )


def take_login(session: WriteSession, *, provider: str, state: str, now: datetime) -> PendingLogin:
    """Return the sign-in started with `state` and forget it: a state works once; raises `OidcLoginFailed`."""
    row = oidc_repository.take_login(session, state_hash=state_hash(state))
    if row is None:
        raise OidcLoginFailed(
            "this sign-in link is unknown or was already used (state not found); start signing in again",
            reason="state_unknown_or_replayed",
        )
    if row.expires_at <= now:
        raise OidcLoginFailed("the sign-in took too long and expired; start signing in again", reason="state_expired")
    if row.provider != provider:
        raise OidcLoginFailed("this answer came back for another provider than the one asked", reason="wrong_provider")
    return PendingLogin(provider=row.provider, nonce=row.nonce, code_verifier=row.code_verifier)


def link_account(
    session: WriteSession, *, identity: VerifiedIdentity, provider_title: str, display_name: str | None, now: datetime
) -> LinkedAccount:
    """Return the account this identity signs in to: its own, one with the same verified email, or a new one."""
    known = oidc_repository.identity(session, issuer=identity.issuer, subject=identity.subject)
    if known is not None:
        user = repository.by_id(session, known.account_id)
        if user is None:  # the foreign key cascades deletes: only a broken database gets here
            raise OidcLoginFailed("the account of this identity no longer exists", reason="account_missing")
        return LinkedAccount(account=_account(user), how="existing")
    if not identity.email:
        raise OidcLoginFailed(
            f"{provider_title} did not share an email address; Tipwise needs one (allow the 'email' scope)",
            reason="no_email",
        )
    email = normalize_email(identity.email)
    user = repository.by_email(session, email)
    if user is not None and not identity.email_verified:
        raise OidcLoginFailed(
            f"an account with {email} exists, but {provider_title} does not confirm that this address is yours; "
            "sign in with your password instead",
            reason="email_not_verified",
        )
    how = "linked"
    if user is None:
        how = "created"
        user = UserRow(id=new_id(), email=email, password_hash=None, role=Role.USER.value, created_at=now)
        repository.add(session, user)
    oidc_repository.add_identity(
        session,
        IdentityRow(
            id=new_id(),
            issuer=identity.issuer,
            subject=identity.subject,
            account_id=user.id,
            email=email,
            display_name=(display_name or identity.name or None),
            created_at=now,
        ),
    )
    return LinkedAccount(account=_account(user), how=how)


def _account(row: UserRow) -> Account:
    return Account(id=row.id, email=row.email, role=Role(row.role), created_at=row.created_at)
