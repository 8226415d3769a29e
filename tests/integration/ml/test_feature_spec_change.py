"""Upgrading to a new feature spec (v2 -> v3, the calendar features) starts the models afresh and keeps working."""

from __future__ import annotations

from sqlalchemy import update

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tipwise.ml.pipelines.models import ModelRow, PendingDecisionRow
from tipwise.recommender import FEATURE_SPEC, FeedbackRequest, Reaction

OLD_SPEC = "tipwise.tips/v2"


class TestFeatureSpecChange:
    def test_models_and_pending_decisions_of_the_old_spec_do_not_break_a_restart(
        self, make_container: ContainerFactory, database_url: str
    ) -> None:
        first = make_container(database_url)
        user = registered(first, "upgrade@example.com")
        learned = first.recommender.next_tip(user_id=user)
        waiting = first.recommender.next_tip(user_id=user)
        assert learned is not None
        assert waiting is not None
        first.recommender.record_feedback(
            user_id=user,
            request=FeedbackRequest(
                tip_instance_id=learned.tip_instance_id, reaction=Reaction.DONE, idempotency_key="a"
            ),
        )
        first.worker.run_once()
        assert first.registry.versions()["linucb"] == 1
        first.close()
        # As an installation that ran the previous release left it: models and a pending decision of v2.
        with first.db.write() as session:
            session.execute(update(ModelRow).values(feature_spec=OLD_SPEC, state=b"not a v3 state"))
            session.execute(update(PendingDecisionRow).values(feature_spec=OLD_SPEC))
        assert FEATURE_SPEC.name != OLD_SPEC

        second = make_container(database_url)

        assert second.registry.versions() == {"linucb": 0, "epsilon_greedy": 0, "random": 0}
        # The decision made under v2 still gets its reward, learned into the fresh v3 models.
        second.recommender.record_feedback(
            user_id=user,
            request=FeedbackRequest(
                tip_instance_id=waiting.tip_instance_id, reaction=Reaction.DONE, idempotency_key="b"
            ),
        )
        second.worker.run_once()
        assert second.registry.versions()["linucb"] == 1
        assert second.recommender.next_tip(user_id=user) is not None
