"""SQL of OIDC login: identities at providers and sign-ins waiting for a provider's answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tipwise.auth.models import IdentityRow, OidcLoginRow


def identity(session: Session, *, issuer: str, subject: str) -> IdentityRow | None:
    return session.scalar(select(IdentityRow).where(IdentityRow.issuer == issuer, IdentityRow.subject == subject))


def add_identity(session: Session, row: IdentityRow) -> None:
    session.add(row)
    session.flush()


def add_login(session: Session, row: OidcLoginRow) -> None:
    session.add(row)
    session.flush()


def take_login(session: Session, *, state_hash: str) -> OidcLoginRow | None:
    """Delete the waiting sign-in with this state and return it; None when another request took it first."""
    row = session.get(OidcLoginRow, state_hash)
    if row is None:
        return None
    # The DELETE's row count decides between two concurrent callbacks with the same state.
    taken = session.execute(delete(OidcLoginRow).where(OidcLoginRow.state_hash == state_hash))
    return row if taken.rowcount == 1 else None  # type: ignore[attr-defined]


def delete_expired_logins(session: Session, *, now: datetime) -> None:
    session.execute(delete(OidcLoginRow).where(OidcLoginRow.expires_at <= now))
