"""The retention job deletes decisions and reactions older than the window, and nothing newer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import ConfigurationError
from tipwise.ml.pipelines import LearnerSettings
from tipwise.privacy import RetentionSettings
from tipwise.recommender import FeedbackRequest, Reaction


def _decide_and_react(container: Container, user: object, key: str) -> None:
    decision = container.recommender.next_tip(user_id=user)  # type: ignore[arg-type]
    assert decision is not None
    container.recommender.record_feedback(
        user_id=user,  # type: ignore[arg-type]
        request=FeedbackRequest(tip_instance_id=decision.tip_instance_id, reaction=Reaction.DONE, idempotency_key=key),
    )


def _count(container: Container, table: str) -> int:
    with container.db.read() as session:
        return int(session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)  # noqa: S608 - test table names


class TestRetention:
    def test_the_job_deletes_only_what_is_older_than_the_window(
        self, make_container: ContainerFactory, database_url: str, clock: FakeClock
    ) -> None:
        container = make_container(database_url, retention_settings=RetentionSettings(decision_days=30))
        user = registered(container, "old@example.com")
        _decide_and_react(container, user, "old-1")
        _decide_and_react(container, user, "old-2")
        clock.advance(timedelta(days=20))
        _decide_and_react(container, user, "new-1")
        container.worker.run_once()
        clock.advance(timedelta(days=11))  # the first two are 31 days old, the last one 11

        assert container.retention.run() == 4
        assert _count(container, "recommender_tip_instance") == 1
        assert _count(container, "recommender_feedback") == 1
        history = container.recommender.history(user_id=user)
        assert [item.tip_instance_id for item in history.items] != []
        assert container.retention.run() == 0

    def test_the_worker_runs_it_once_per_interval(self, make_container: ContainerFactory, clock: FakeClock) -> None:
        container = make_container(retention_settings=RetentionSettings(decision_days=2, interval_hours=24 * 7))
        user = registered(container, "old@example.com")
        _decide_and_react(container, user, "a")
        clock.advance(timedelta(days=3))
        container.worker.run_once()
        assert _count(container, "recommender_tip_instance") == 0

        _decide_and_react(container, user, "b")
        clock.advance(timedelta(days=3))
        container.worker.run_once()  # three days after the last run, the interval is a week: not yet
        assert _count(container, "recommender_tip_instance") == 1
        clock.advance(timedelta(days=4))
        container.worker.run_once()
        assert _count(container, "recommender_tip_instance") == 0

    def test_a_window_shorter_than_the_reward_wait_is_refused(self, make_container: ContainerFactory) -> None:
        with pytest.raises(ConfigurationError, match="TIPWISE_RETENTION_DECISION_DAYS"):
            make_container(
                retention_settings=RetentionSettings(decision_days=1),
                learner_settings=LearnerSettings(reward_wait_hours=48),
            )
