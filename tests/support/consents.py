"""Helpers for tests whose users must have answered the consent screen."""

from __future__ import annotations

from uuid import UUID

from tipwise.bootstrap import Container
from tipwise.profile import ConsentsPut


def consenting(container: Container, user_id: UUID, *, granted: bool = True) -> UUID:
    """Record that the person granted (or refused) every purpose; return their id."""
    container.profile.record_consents(user_id=user_id, decisions=ConsentsPut.every_purpose(granted=granted))
    return user_id


def registered(container: Container, email: str, *, granted: bool = True) -> UUID:
    """Register an account that answered the consent screen, granting (or refusing) every purpose."""
    return consenting(container, container.auth.register(email=email, password="a long password").id, granted=granted)
