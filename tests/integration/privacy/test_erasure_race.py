"""A decision planned just before its person is erased is not recorded after the erasure."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import event

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.privacy import rows_about
from tipwise import events
from tipwise.bootstrap import Container

ALICE = "alice@example.com"
BOB = "bob@example.com"


def _erasing_seeds(container_of: Callable[[], Container], erase: list[UUID]) -> Callable[[], int]:
    """Seeds for decisions; drawing one first erases whoever is in `erase`: between the plan and its record."""

    def seed() -> int:
        while erase:
            container_of().privacy.erase(user_id=erase.pop())
        return 7

    return seed


def _only_the_tombstone_is_left(container: Container, user: UUID) -> None:
    left = rows_about(container.db, user)
    assert set(left) <= {"events_outbox", "events_log"}, set(left)
    assert {row.type for rows in left.values() for row in rows} == {events.USER_DELETED}
    with container.db.read() as session:
        assert not events.shredding.has_key(session, str(user))


class TestErasureDuringADecision:
    def test_the_decision_is_dropped_and_nothing_about_the_person_comes_back(
        self, make_container: ContainerFactory, database_url: str
    ) -> None:
        erase: list[UUID] = []
        built: list[Container] = []
        container = make_container(database_url, seeds=_erasing_seeds(lambda: built[0], erase))
        built.append(container)
        alice, bob = registered(container, ALICE), registered(container, BOB)
        assert container.recommender.next_tip(user_id=alice) is not None

        erase.append(alice)
        assert container.recommender.next_tip(user_id=alice) is None

        _only_the_tombstone_is_left(container, alice)
        assert container.recommender.next_tip(user_id=bob) is not None

    def test_in_a_group_commit_only_the_erased_persons_decision_is_dropped(
        self, make_container: ContainerFactory
    ) -> None:
        erase: list[UUID] = []
        built: list[Container] = []
        container = make_container(seeds=_erasing_seeds(lambda: built[0], erase))
        built.append(container)
        alice, bob = registered(container, ALICE), registered(container, BOB)

        async def together() -> list[Any]:
            erase.append(alice)  # erased while her decision is planned, before the group records it
            return list(
                await asyncio.gather(
                    container.recommender.next_tip_async(user_id=alice),
                    container.recommender.next_tip_async(user_id=bob),
                )
            )

        for_alice, for_bob = asyncio.run(together())

        assert for_alice is None
        assert for_bob is not None
        _only_the_tombstone_is_left(container, alice)
        assert rows_about(container.db, bob)["recommender_tip_instance"]


@pytest.mark.postgres
class TestConcurrentErasureOnPostgres:
    def test_an_erasure_waits_for_a_decision_being_written_and_then_deletes_it(
        self, make_container: ContainerFactory, postgres_admin_url: str
    ) -> None:
        from tests.support.postgres import fresh_database

        with fresh_database(postgres_admin_url) as url:
            container = make_container(url)
            alice = registered(container, ALICE)
            erasures: list[threading.Thread] = []

            def erase_while_the_decision_is_written(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                # The decision's transaction has checked the account and is writing its row: an
                # erasure starts in another transaction now, and the decision commits a while later.
                if erasures or not statement.startswith("INSERT INTO recommender_tip_instance"):
                    return
                eraser = threading.Thread(target=container.privacy.erase, kwargs={"user_id": alice})
                erasures.append(eraser)
                eraser.start()
                time.sleep(1.0)

            event.listen(container.db.write_engine, "before_cursor_execute", erase_while_the_decision_is_written)
            try:
                decision = container.recommender.next_tip(user_id=alice)
            finally:
                event.remove(container.db.write_engine, "before_cursor_execute", erase_while_the_decision_is_written)
            assert decision is not None  # it committed first: the erasure waited for it
            assert len(erasures) == 1
            erasures[0].join(30)
            assert not erasures[0].is_alive()

            _only_the_tombstone_is_left(container, alice)
