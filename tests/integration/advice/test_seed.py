"""Seeding the advice catalogue on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

from tipwise.advice import DEFAULT_LIBRARY, AdviceFacade, Library, load_library
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database


class TestSeeding:
    def test_seeding_loads_every_tip_and_is_repeatable(self, migrated: Database, clock: FakeClock) -> None:
        library = load_library(DEFAULT_LIBRARY)
        first = AdviceFacade.seed_and_load(db=migrated, library=library, clock=clock)
        again = AdviceFacade.seed_and_load(db=migrated, library=library, clock=clock)
        assert [t.id for t in first.active()] == sorted(t.id for t in library.tips)
        assert again.active() == first.active()

    def test_tips_dropped_from_the_library_are_retired_not_deleted(self, migrated: Database, clock: FakeClock) -> None:
        library = load_library(DEFAULT_LIBRARY)
        AdviceFacade.seed_and_load(db=migrated, library=library, clock=clock)
        dropped = library.tips[0]
        edited = dataclasses.replace(library.tips[1], title="A freshly edited title")
        smaller = Library(version="next", tips=(edited, *library.tips[2:]))

        facade = AdviceFacade.seed_and_load(db=migrated, library=smaller, clock=clock)

        assert dropped.id not in {t.id for t in facade.active()}
        retired = facade.get(dropped.id)
        assert retired is not None
        assert retired.active is False
        assert retired.title == dropped.title
        assert facade.get(edited.id).title == "A freshly edited title"  # type: ignore[union-attr]
