"""Preferences on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from tipwise.advice import Category
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.kernel.ids import new_id
from tipwise.profile import CONSENT_WORDING_VERSION, ConsentsPut, PreferencesPatch, ProfileFacade, Purpose
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

    def test_a_core_connection_reads_the_same_preferences_as_a_session(self, migrated: Database) -> None:
        user = new_id()
        patch = PreferencesPatch.model_validate(
            {
                "timezone": "Europe/Paris",
                "muted_categories": ["sleep"],
                "active_hours": {"mon": [{"start": "07:30", "end": "12:00"}], "sun": []},
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "frequency_cap_per_day": 3,
                "channels": {"sleep": ["push", "in_app"]},
            }
        )
        with migrated.write() as session:
            update_preferences(session, user_id=user, patch=patch, now=T0)
        with migrated.read() as session:
            through_session = preferences(session, user)
        with migrated.read_connection() as connection:
            through_connection = preferences(connection, user)
            defaults = preferences(connection, new_id())
        assert through_connection == through_session
        assert through_connection.frequency_cap_per_day == 3
        assert through_connection.quiet_hours is not None
        assert defaults.timezone == "UTC"


class TestForDecision:
    def test_reads_the_consents_afresh_while_the_preferences_come_from_the_cache(self, migrated: Database) -> None:
        profile = ProfileFacade(db=migrated, clock=FakeClock(T0))
        user = new_id()
        profile.update_preferences(user_id=user, patch=PreferencesPatch(timezone="Asia/Kolkata"))
        profile.record_consents(user_id=user, decisions=ConsentsPut.every_purpose(granted=True))

        prefs, purposes = profile.for_decision(user_id=user)
        assert prefs == profile.preferences(user_id=user)
        assert prefs.timezone == "Asia/Kolkata"
        assert purposes == frozenset(Purpose)

        profile.record_consents(
            user_id=user,
            decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes={Purpose.PERSONALIZATION: False}),
        )
        _, now = profile.for_decision(user_id=user)
        assert now == frozenset(Purpose) - {Purpose.PERSONALIZATION}
        assert now == profile.granted(user_id=user)

    def test_reads_both_when_nothing_is_cached(self, migrated: Database) -> None:
        profile = ProfileFacade(db=migrated, clock=FakeClock(T0), cache_seconds=0)
        user = new_id()
        profile.record_consents(
            user_id=user,
            decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes={Purpose.EMAIL: True}),
        )
        prefs, purposes = profile.for_decision(user_id=user)
        assert (prefs.user_id, prefs.timezone, purposes) == (user, "UTC", frozenset({Purpose.EMAIL}))
