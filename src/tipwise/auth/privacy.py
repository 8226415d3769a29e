"""The auth module's share of export and erasure: the account, its identities and its sessions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from tipwise.auth.models import IdentityRow, LoginFailureRow, RefreshTokenRow, SessionRow, UserRow
from tipwise.auth.service import LoginThrottle, SessionCache
from tipwise.kernel.privacy import row_dict


class AuthPersonalData:
    """Get it from `AuthFacade.personal_data()`, so erasure also drops the sessions this process cached."""

    name = "auth"
    tables = frozenset({"auth_user", "auth_identity", "auth_session"})

    def __init__(self, *, cache: SessionCache | None = None) -> None:
        self._cache = cache

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        account = session.get(UserRow, user_id)
        accounts = []
        if account is not None:
            row = row_dict(account)
            # The hash is a secret of the sign-in, not information about the person.
            row["password_hash"] = None
            row["has_password"] = account.password_hash is not None
            accounts.append(row)
        identities = session.scalars(select(IdentityRow).where(IdentityRow.account_id == user_id))
        sessions = session.scalars(
            select(SessionRow).where(SessionRow.account_id == user_id).order_by(SessionRow.created_at)
        )
        return {
            "account": accounts,
            "identities": [row_dict(r) for r in identities],
            # Refresh tokens are left out: they are secrets (stored hashed), not facts about the person.
            "sessions": [row_dict(r) for r in sessions],
        }

    def erase(self, session: Session, user_id: UUID) -> int:
        account = session.get(UserRow, user_id)
        session_ids = list(session.scalars(select(SessionRow.id).where(SessionRow.account_id == user_id)))
        gone = 0
        statements = [
            delete(RefreshTokenRow).where(RefreshTokenRow.session_id.in_(session_ids)),
            delete(SessionRow).where(SessionRow.account_id == user_id),
            delete(IdentityRow).where(IdentityRow.account_id == user_id),
            delete(UserRow).where(UserRow.id == user_id),
        ]
        if account is not None:
            # Failed sign-ins are keyed by a hash of the email: drop the person's too.
            statements.append(
                delete(LoginFailureRow).where(LoginFailureRow.key_hash == LoginThrottle.email_key(account.email))
            )
        for statement in statements:
            result = session.execute(statement)
            gone += int(getattr(result, "rowcount", 0) or 0)
        if self._cache is not None:
            cache = self._cache

            def forget(_: Session) -> None:
                for session_id in session_ids:
                    cache.forget(session_id)

            # Now, and again once the erasure committed: a check that read a session before the
            # commit must not keep it as live after it (see `SessionCache.put`).
            forget(session)
            event.listen(session, "after_commit", forget, once=True)
        return gone
