"""Preferences on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from tipwise.advice import Category
from tipwise.kernel.db import Database
from tipwise.kernel.ids import new_id
from tipwise.profile import PreferencesPatch
from tipwise.profile.service import preferences, update_preferences

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class TestPreferences:
    def test_defaults_until_set_then_partial_updates_keep_other_fields(self, migrated: Database) -> None:
        user = new_id()
        with migrated.read() as session:
            assert preferences(session, user).timezone == "UTC"
        with migrated.write() as session:
            update_preferences(
                session,
                user_id=user,
                patch=PreferencesPatch(timezone="America/Chicago", muted_categories=[Category.SLEEP, Category.SLEEP]),
                now=T0,
            )
        with migrated.write() as session:
            update_preferences(session, user_id=user, patch=PreferencesPatch(timezone="Asia/Kolkata"), now=T0)
        with migrated.read() as session:
            stored = preferences(session, user)
        assert stored.timezone == "Asia/Kolkata"
        assert stored.muted_categories == frozenset({Category.SLEEP})
