"""Decisions on the hot path: group commits on the event loop, and the per-process history cache."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.decisions import shown
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.profile import CONSENT_WORDING_VERSION, ConsentsPut, Purpose
from tipwise.recommender import FeedbackRequest, NextTipOut, Reaction
from tipwise.recommender.models import TipInstanceRow


def _commits(container: Container) -> list[int]:
    """Count the write transactions that commit from now on."""
    commits: list[int] = []

    def counted(_connection: Any) -> None:
        commits.append(1)

    event.listen(container.db.write_engine, "commit", counted)
    return commits


def _set_consents(container: Container, user: uuid.UUID, purposes: dict[Purpose, bool]) -> None:
    container.profile.record_consents(
        user_id=user, decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes=purposes)
    )


def _recorded(container: Container, decisions: list[NextTipOut | None]) -> int:
    ids = [d.tip_instance_id for d in decisions if d is not None]
    with container.db.read() as session:
        return session.scalar(select(func.count()).where(TipInstanceRow.id.in_(ids))) or 0


async def _together(container: Container, users: list[uuid.UUID], *, explore: bool = True) -> list[NextTipOut | None]:
    return list(
        await asyncio.gather(*(container.recommender.next_tip_async(user_id=u, explore=explore) for u in users))
    )


class TestGroupCommit:
    def test_decisions_asked_together_are_recorded_in_one_transaction(self, container: Container) -> None:
        users = [registered(container, f"group{i}@example.com") for i in range(8)]
        commits = _commits(container)

        decisions = asyncio.run(_together(container, users))

        assert all(d is not None for d in decisions)
        assert len(commits) == 1
        assert _recorded(container, decisions) == 8

    def test_two_decisions_for_one_person_in_one_group_never_show_the_same_tip(self, container: Container) -> None:
        user = registered(container, "twice@example.com")
        # Greedy on the same model and context: both plans choose the same tip; the second is re-planned.
        first, second = asyncio.run(_together(container, [user, user], explore=False))

        assert shown(first).id != shown(second).id
        assert _recorded(container, [first, second]) == 2

    def test_while_another_writer_holds_the_lock_the_loop_keeps_serving_and_the_decision_waits_for_it(
        self, container: Container
    ) -> None:
        user = registered(container, "busy@example.com")
        holding, release = threading.Event(), threading.Event()

        def writer() -> None:
            with container.db.write():
                holding.set()
                release.wait(5)

        async def scenario() -> tuple[NextTipOut | None, int, bool]:
            decision = asyncio.ensure_future(container.recommender.next_tip_async(user_id=user))
            ticks = 0
            for _ in range(20):  # the loop is free while the decision waits for the lock
                await asyncio.sleep(0.005)
                ticks += 1
            done_while_held = decision.done()
            release.set()
            return await decision, ticks, done_while_held

        thread = threading.Thread(target=writer)
        thread.start()
        assert holding.wait(5)
        try:
            decision, ticks, done_while_held = asyncio.run(scenario())
        finally:
            release.set()
            thread.join()

        assert ticks == 20
        assert not done_while_held
        assert decision is not None
        assert _recorded(container, [decision]) == 1

    def test_a_writer_taking_the_lock_back_to_back_does_not_starve_a_decision(self, container: Container) -> None:
        """The relay or the learner with a backlog: polling for the lock would almost never find it free."""
        user = registered(container, "starved@example.com")
        running, stop = threading.Event(), threading.Event()

        def busy_writer() -> None:
            while not stop.is_set():
                with container.db.write():
                    running.set()
                    time.sleep(0.001)

        async def scenario() -> NextTipOut | None:
            # Before the fix the decision waited as long as the writer ran: here, past this timeout.
            return await asyncio.wait_for(container.recommender.next_tip_async(user_id=user), timeout=5)

        thread = threading.Thread(target=busy_writer)
        thread.start()
        assert running.wait(5)
        try:
            decision = asyncio.run(scenario())
        finally:
            stop.set()
            thread.join()

        assert decision is not None
        assert _recorded(container, [decision]) == 1

    def test_a_failure_after_the_commit_does_not_record_the_group_again(
        self, container: Container, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        users = [registered(container, f"after{i}@example.com") for i in range(3)]

        def wake_fails() -> None:
            raise RuntimeError("the worker could not be woken")

        monkeypatch.setattr(container.recommender, "_on_commit", wake_fails)
        decisions = asyncio.run(_together(container, users))

        assert all(d is not None for d in decisions)
        with container.db.read() as session:
            rows = session.scalar(select(func.count()).where(TipInstanceRow.user_id.in_(users)))
        assert rows == 3


class TestHistoryCache:
    def test_a_tip_marked_not_for_me_never_comes_back(self, container: Container, clock: FakeClock) -> None:
        user = registered(container, "never@example.com")
        marked = container.recommender.next_tip(user_id=user, explore=False)
        assert marked is not None
        container.recommender.record_feedback(
            user_id=user,
            request=FeedbackRequest(
                tip_instance_id=marked.tip_instance_id, reaction=Reaction.NOT_FOR_ME, idempotency_key="k"
            ),
        )
        for _ in range(5):
            clock.advance(timedelta(days=2))
            assert shown(container.recommender.next_tip(user_id=user, explore=False)).id != shown(marked).id

    def test_a_tip_another_process_just_showed_is_not_shown_again_from_a_stale_cache(
        self, make_container: ContainerFactory, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        here, there = make_container(url), make_container(url)
        user = registered(here, "two-processes@example.com")
        # This process caches the person's history ...
        assert here.recommender.next_tip(user_id=user, explore=False) is not None
        # ... another process shows them the tip this one would choose next ...
        theirs = shown(there.recommender.next_tip(user_id=user, explore=False))
        # ... and the re-check under the write lock, not the cache, has the last word.
        ours = shown(here.recommender.next_tip(user_id=user, explore=False))
        assert ours.id != theirs.id

    def test_a_withdrawal_in_another_process_applies_to_the_very_next_decision(
        self, make_container: ContainerFactory, tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        here, there = make_container(url), make_container(url)
        user = registered(here, "withdraws-elsewhere@example.com")
        before = asyncio.run(here.recommender.next_tip_async(user_id=user))
        assert before is not None
        assert before.personalized is True

        there.profile.record_consents(
            user_id=user,
            decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes={Purpose.PERSONALIZATION: False}),
        )

        after = asyncio.run(here.recommender.next_tip_async(user_id=user))
        assert after is not None
        assert after.personalized is False

    @pytest.mark.parametrize("asked", ["sync", "async"])
    def test_without_calendar_consent_a_withdrawal_elsewhere_applies_to_the_next_decision_recorded(
        self, make_container: ContainerFactory, tmp_path: Path, asked: str
    ) -> None:
        # Without the calendar consent, a decision is planned on the consents last read here and
        # recorded only after they were read again in its write transaction.
        url = f"sqlite:///{tmp_path / 'shared.db'}"
        here, there = make_container(url), make_container(url)
        user = registered(here, "no-calendar@example.com")
        _set_consents(here, user, {Purpose.CALENDAR_SIGNALS: False})

        def decide() -> NextTipOut:
            if asked == "sync":
                decision = here.recommender.next_tip(user_id=user)
            else:
                decision = asyncio.run(here.recommender.next_tip_async(user_id=user))
            assert decision is not None
            return decision

        assert decide().personalized is True
        _set_consents(there, user, {Purpose.PERSONALIZATION: False})
        after = decide()
        assert after.personalized is False
        with here.db.read() as session:
            row = session.get(TipInstanceRow, after.tip_instance_id)
            assert row is not None
            assert Purpose.PERSONALIZATION.value not in row.context_snapshot["purposes"]
        assert here.recommender.next_tip(user_id=user) is not None

        # Granted again elsewhere: the next decision recorded is personalized again.
        _set_consents(there, user, {Purpose.PERSONALIZATION: True})
        assert decide().personalized is True
