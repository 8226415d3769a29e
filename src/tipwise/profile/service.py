"""Use cases of the profile module."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from tipwise.advice import Category
from tipwise.kernel.db import ReadSession, WriteSession
from tipwise.profile import repository
from tipwise.profile.contracts import DEFAULT_TIMEZONE, Preferences, PreferencesPatch
from tipwise.profile.models import PreferencesRow


def preferences(session: ReadSession | WriteSession, user_id: UUID) -> Preferences:
    row = repository.get(session, user_id)
    return _dto(row) if row else Preferences(user_id=user_id)


def update_preferences(session: WriteSession, *, user_id: UUID, patch: PreferencesPatch, now: datetime) -> Preferences:
    row = repository.get(session, user_id)
    if row is None:
        row = PreferencesRow(user_id=user_id, timezone=DEFAULT_TIMEZONE, muted_categories=[], updated_at=now)
        repository.add(session, row)
    if patch.timezone is not None:
        row.timezone = patch.timezone
    if patch.muted_categories is not None:
        row.muted_categories = sorted({c.value for c in patch.muted_categories})
    row.updated_at = now
    return _dto(row)


def _dto(row: PreferencesRow) -> Preferences:
    return Preferences(
        user_id=row.user_id,
        timezone=row.timezone,
        muted_categories=frozenset(Category(c) for c in row.muted_categories),
    )
