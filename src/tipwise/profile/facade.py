"""The profile module as other modules and the gateway see it."""

from __future__ import annotations

from uuid import UUID

from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.profile import service
from tipwise.profile.contracts import Preferences, PreferencesPatch


class ProfileFacade:
    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def preferences(self, *, user_id: UUID) -> Preferences:
        """Return the person's preferences, defaults when they have set none."""
        with self._db.read() as session:
            return service.preferences(session, user_id)

    def update_preferences(self, *, user_id: UUID, patch: PreferencesPatch) -> Preferences:
        """Apply `patch` and return the preferences as stored."""
        with self._db.write() as session:
            return service.update_preferences(session, user_id=user_id, patch=patch, now=self._clock.now())
