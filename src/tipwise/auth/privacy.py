"""The auth module's share of export and erasure: the account and its sign-in identities."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.auth.models import IdentityRow, UserRow
from tipwise.kernel.privacy import row_dict


class AuthPersonalData:
    name = "auth"
    tables = frozenset({"auth_user", "auth_identity"})

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
        return {"account": accounts, "identities": [row_dict(r) for r in identities]}

    def erase(self, session: Session, user_id: UUID) -> int:
        gone = session.execute(delete(IdentityRow).where(IdentityRow.account_id == user_id))
        account = session.execute(delete(UserRow).where(UserRow.id == user_id))
        return int(getattr(gone, "rowcount", 0) or 0) + int(getattr(account, "rowcount", 0) or 0)
