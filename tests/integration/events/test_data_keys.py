"""Per-person data keys: a key is cached only once its creating transaction has committed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete

from tipwise import events
from tipwise.events import shredding
from tipwise.events.models import DataKeyRow
from tipwise.kernel.db import Database
from tipwise.kernel.ids import new_id

NOW = datetime(2026, 11, 26, tzinfo=UTC)


class Boom(Exception):
    pass


def _create_twice_and_roll_back(db: Database, subject: str) -> None:
    with db.write() as session:
        first = shredding.key_for(session, subject, now=NOW)
        # A second event about the same person in the same transaction reads the uncommitted key back.
        assert shredding.key_for(session, subject, now=NOW) == first
        raise Boom(first)


class TestDataKeys:
    def test_a_key_created_by_a_transaction_that_rolls_back_is_not_used_afterwards(self, migrated: Database) -> None:
        subject = str(new_id())
        with pytest.raises(Boom) as raised:
            _create_twice_and_roll_back(migrated, subject)
        first = raised.value.args[0]

        with migrated.write() as session:
            again = shredding.key_for(session, subject, now=NOW)
        with migrated.read() as session:
            assert shredding.has_key(session, subject)
        assert again != first, "the rolled-back key must not have been cached"
        with migrated.read() as session:
            assert shredding.key_for(session, subject, now=NOW) == again

    def test_a_committed_key_is_the_same_in_every_later_transaction(self, migrated: Database) -> None:
        subject = str(new_id())
        with migrated.write() as session:
            created = shredding.key_for(session, subject, now=NOW)
        for _ in range(2):
            with migrated.write() as session:
                assert shredding.key_for(session, subject, now=NOW) == created

    def test_events_of_a_person_erased_by_another_process_do_not_open_with_a_key_cached_here(
        self, migrated: Database
    ) -> None:
        subject = str(new_id())
        with migrated.write() as session:
            shredding.key_for(session, subject, now=NOW)
        with migrated.write() as session:
            key = shredding.key_for(session, subject, now=NOW)  # now cached in this process
        plain = events.Event.create(
            type=events.TIP_DECIDED, subject=subject, time=NOW, data={"tip_instance_id": str(new_id())}
        )
        sealed = replace(plain, payload=shredding.seal(key, plain), encrypted=True)
        with migrated.read() as session:
            assert shredding.reveal(session, [sealed]) == ([plain], 0)

        # Another process erases the person: the key row goes, this process's cache does not hear of it.
        with migrated.write() as session:
            session.execute(delete(DataKeyRow).where(DataKeyRow.subject == subject))

        with migrated.read() as session:
            assert shredding.reveal(session, [sealed]) == ([], 1)
