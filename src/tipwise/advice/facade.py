"""The advice library as other modules see it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from tipwise.advice import repository
from tipwise.advice.domain import Tip
from tipwise.advice.loader import Library
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database


class AdviceFacade:
    """Read access to the catalogue, kept in memory: it is small and read on every decision."""

    def __init__(self, tips: Sequence[Tip]) -> None:
        self._by_id = {tip.id: tip for tip in tips}
        self._active = tuple(tip for tip in tips if tip.active)

    @classmethod
    def seed_and_load(cls, *, db: Database, library: Library, clock: Clock) -> AdviceFacade:
        """Upsert `library` into the catalogue table and return a facade over the result."""
        try:
            with db.write() as session:
                repository.upsert_library(session, library, now=clock.now())
        except IntegrityError:
            # Another process seeded the same tips at the same moment (the processes of a scaled
            # deployment start together); now they exist, and the upsert updates them.
            with db.write() as session:
                repository.upsert_library(session, library, now=clock.now())
        with db.read() as session:
            return cls(repository.all_tips(session))

    def active(self) -> tuple[Tip, ...]:
        """Return the tips that may be recommended now."""
        return self._active

    def get(self, tip_id: str) -> Tip | None:
        """Return a tip by id, including retired ones (history still shows them)."""
        return self._by_id.get(tip_id)
