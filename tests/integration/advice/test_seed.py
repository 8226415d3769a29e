"""Seeding the advice catalogue on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.postgres import fresh_database
from tipwise import migrations
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


@pytest.mark.postgres
class TestConcurrentSeeding:
    def test_a_process_that_loses_the_race_to_insert_the_tips_updates_them_instead(
        self, postgres_admin_url: str, clock: FakeClock
    ) -> None:
        library = load_library(DEFAULT_LIBRARY)
        with fresh_database(postgres_admin_url) as url:
            db = Database.connect(url)
            try:
                migrations.upgrade(db)
                first = library.tips[0]
                # Another process inserts a tip and holds its transaction open...
                other = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
                other.execute(
                    "INSERT INTO advice_tip (id, title, body, category, effort, minutes, times_of_day, active,"
                    " library_version, updated_at) VALUES (%s, 'x', 'x', 'movement', 'low', 1, '[]', true, 'x', now())",
                    (first.id,),
                )
                seeded: list[AdviceFacade] = []
                seeding = threading.Thread(
                    target=lambda: seeded.append(AdviceFacade.seed_and_load(db=db, library=library, clock=clock))
                )
                seeding.start()  # ...so this insert waits on the unique index,
                time.sleep(0.5)
                other.commit()  # and fails when the other commits; the retry updates the row.
                other.close()
                seeding.join(30)
                assert seeded, "seeding did not finish"
                assert [t.id for t in seeded[0].active()] == sorted(t.id for t in library.tips)
                assert seeded[0].get(first.id) == first
            finally:
                db.dispose()
