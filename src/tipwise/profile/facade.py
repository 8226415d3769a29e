"""The profile module as other modules and the gateway see it."""

from __future__ import annotations

import threading
import time
from uuid import UUID

from sqlalchemy import Connection

from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.profile import service
from tipwise.profile.contracts import Consents, ConsentSource, ConsentsPut, Preferences, PreferencesPatch, Purpose

# Preferences are read on every decision and change rarely. A change made through this
# process is seen at once; one made through another process within this many seconds.
CACHE_SECONDS = 5.0


class ProfileFacade:
    def __init__(self, *, db: Database, clock: Clock, cache_seconds: float = CACHE_SECONDS) -> None:
        self._db = db
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[UUID, tuple[float, Preferences]] = {}
        # Bumped by every change: a read that began before a change must not cache what it read.
        self._generation: dict[UUID, int] = {}
        self._lock = threading.Lock()

    def preferences(self, *, user_id: UUID) -> Preferences:
        """Return the person's preferences, defaults when they have set none."""
        cached = self._cached(user_id)
        if cached is not None:
            return cached
        generation = self._generation.get(user_id, 0)
        with self._db.read_connection() as connection:
            prefs = service.preferences(connection, user_id)
        self._remember(prefs, generation=generation)
        return prefs

    def _cached(self, user_id: UUID) -> Preferences | None:
        """The person's preferences from this process's cache, None when absent or expired."""
        cached = self._cache.get(user_id)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def for_decision(
        self, *, user_id: UUID, connection: Connection | None = None
    ) -> tuple[Preferences, frozenset[Purpose]]:
        """Return `preferences` and `granted` together: the consents read afresh, the preferences as cached.

        A decision needs both; when the cached preferences have expired, both are read on one
        connection in one read transaction instead of two: the caller's `connection` if given
        (a decision that reads the calendar too), otherwise one of its own.
        """
        cached = self._cached(user_id)
        if cached is not None:
            return cached, self.granted(user_id=user_id, connection=connection)
        generation = self._generation.get(user_id, 0)
        with self._db.read_connection(within=connection) as reading:
            prefs, purposes = service.preferences(reading, user_id), service.granted(reading, user_id)
        self._remember(prefs, generation=generation)
        return prefs, purposes

    def update_preferences(self, *, user_id: UUID, patch: PreferencesPatch) -> Preferences:
        """Apply `patch` and return the preferences as stored."""
        with self._lock:
            generation = self._generation.get(user_id, 0) + 1
            self._generation[user_id] = generation
        with self._db.write() as session:
            prefs = service.update_preferences(session, user_id=user_id, patch=patch, now=self._clock.now())
        self._remember(prefs, generation=generation)
        return prefs

    def consents(self, *, user_id: UUID) -> Consents:
        """Return the person's consent ledger and current state; read afresh every time, never cached.

        A withdrawal must take effect at the very next decision or sync, in
        whatever process that runs; one small indexed read is the price.
        """
        with self._db.read() as session:
            return service.consents(session, user_id)

    def granted(self, *, user_id: UUID, connection: Connection | None = None) -> frozenset[Purpose]:
        """Return the purposes the person grants now; read afresh every time, like `consents`, but cheaper.

        Decisions call this: one indexed Core read, no ORM objects. With `connection` the read
        runs in the caller's transaction (a decision checks the consents in the transaction that
        records it), otherwise in a read transaction of its own.
        """
        with self._db.read_connection(within=connection) as reading:
            return service.granted(reading, user_id)

    def allows(self, *, user_id: UUID, purpose: Purpose) -> bool:
        """Return whether the person currently grants `purpose` (the `ConsentPort` connectors call)."""
        return self.consents(user_id=user_id).allows(purpose)

    def record_consents(
        self, *, user_id: UUID, decisions: ConsentsPut, source: ConsentSource = ConsentSource.API
    ) -> Consents:
        """Append the person's decisions to the ledger (only those that change something); return the new state."""
        with self._db.write() as session:
            return service.record_consents(
                session, user_id=user_id, decisions=decisions, source=source, now=self._clock.now()
            )

    def _remember(self, prefs: Preferences, *, generation: int) -> None:
        with self._lock:
            if self._generation.get(prefs.user_id, 0) != generation:
                return  # changed while we read: the change caches its own result
            if len(self._cache) > 100_000:  # bound the memory; the next reads refill it
                self._cache.clear()
            self._cache[prefs.user_id] = (time.monotonic() + self._cache_seconds, prefs)
