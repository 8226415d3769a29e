"""The learning loop on the embedded default: decisions, reactions, rewards, and a policy that follows them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.decisions import shown
from tipwise.advice import Category
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import Conflict
from tipwise.ml.pipelines.models import ModelRow
from tipwise.profile import Purpose
from tipwise.recommender import FeedbackRequest, NextTipOut, Reaction
from tipwise.recommender.models import TipInstanceRow


@pytest.fixture
def container(make_container: ContainerFactory, database_url: str) -> Container:
    """The loop runs on SQLite and on PostgreSQL."""
    return make_container(database_url)


def _user(container: Container, email: str) -> uuid.UUID:
    return registered(container, email)


def _decide(container: Container, user_id: uuid.UUID) -> NextTipOut:
    decision = container.recommender.next_tip(user_id=user_id)
    assert decision is not None
    return decision


def _react(container: Container, user_id: uuid.UUID, decision: NextTipOut, reaction: Reaction) -> None:
    container.recommender.record_feedback(
        user_id=user_id,
        request=FeedbackRequest(
            tip_instance_id=decision.tip_instance_id, reaction=reaction, idempotency_key=str(decision.tip_instance_id)
        ),
    )


def _instance(container: Container, instance_id: uuid.UUID) -> TipInstanceRow:
    with container.db.read() as session:
        row = session.get(TipInstanceRow, instance_id)
        assert row is not None
        session.expunge(row)
        return row


class TestLearningLoop:
    def test_the_next_decision_uses_a_reaction_once_the_learner_has_run(self, container: Container) -> None:
        user = _user(container, "loop@example.com")
        first = _decide(container, user)
        assert first.model_version == 0
        _react(container, user, first, Reaction.DONE)

        # tip.decided + feedback.reaction for the learner; the 6 consent.changed of sign-up for integrations.
        assert container.worker.run_once() == 2 + 6
        assert container.registry.versions() == {"linucb": 1, "epsilon_greedy": 1, "random": 1}
        assert _decide(container, user).model_version == 1

    def test_each_event_is_learned_exactly_once(self, container: Container) -> None:
        user = _user(container, "once@example.com")
        decision = _decide(container, user)
        _react(container, user, decision, Reaction.DONE)
        container.worker.run_once()
        assert container.worker.run_once() == 0
        container.learner.restore()  # as after a restart: state comes back from the database
        assert container.registry.versions()["linucb"] == 1
        assert container.worker.run_once() == 0
        assert container.registry.versions()["linucb"] == 1

    def test_a_restarted_learner_continues_from_the_stored_model(
        self, make_container: ContainerFactory, sqlite_url: str
    ) -> None:
        first = make_container(sqlite_url)
        user = _user(first, "restart@example.com")
        decision = _decide(first, user)
        _react(first, user, decision, Reaction.DONE)
        first.worker.run_once()
        first.close()

        second = make_container(sqlite_url)
        assert second.registry.versions()["linucb"] == 1
        theta_before = second.learner.model("linucb").state_bytes()
        assert second.worker.run_once() == 0
        assert second.learner.model("linucb").state_bytes() == theta_before

    def test_models_stored_under_the_previous_feature_spec_start_fresh_and_learn_on(
        self, make_container: ContainerFactory, sqlite_url: str
    ) -> None:
        first = make_container(sqlite_url)
        user = _user(first, "upgrade@example.com")
        _react(first, user, _decide(first, user), Reaction.DONE)
        first.worker.run_once()
        pending = _decide(first, user)
        with first.db.write() as session:  # as if stored before the hashed spec (another state layout)
            session.execute(update(ModelRow).values(feature_spec="tipwise.tips/v2", state=b"not this layout"))
        first.close()

        second = make_container(sqlite_url)
        assert second.registry.versions()["linucb"] == 0
        _react(second, user, pending, Reaction.DONE)
        second.worker.run_once()
        assert second.registry.versions()["linucb"] == 1
        assert _decide(second, user).model_version == 1

    def test_no_reaction_within_the_wait_gives_the_default_reward_and_late_reactions_are_counted(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = _user(container, "silent@example.com")
        decision = _decide(container, user)
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 0

        clock.advance(container.learner.reward_map.wait + timedelta(seconds=1))
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 1
        metrics = container.metrics.render().decode()
        assert 'tipwise_rewards_total{source="timeout"} 1.0' in metrics

        _react(container, user, decision, Reaction.DONE)
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 1
        assert "tipwise_late_rewards_total 1.0" in container.metrics.render().decode()

    def test_a_snoozed_tip_comes_back_after_the_snooze_window(self, container: Container, clock: FakeClock) -> None:
        user = _user(container, "snooze@example.com")
        decision = _decide(container, user)
        _react(container, user, decision, Reaction.SNOOZE)
        snoozed = shown(decision).id

        clock.advance(timedelta(minutes=30))
        soon = _decide(container, user)
        assert snoozed not in _instance(container, soon.tip_instance_id).probabilities

        clock.advance(timedelta(hours=2))
        later = _decide(container, user)
        assert snoozed in _instance(container, later.tip_instance_id).probabilities

    def test_not_for_me_removes_a_tip_for_good(self, container: Container, clock: FakeClock) -> None:
        user = _user(container, "never@example.com")
        decision = _decide(container, user)
        _react(container, user, decision, Reaction.NOT_FOR_ME)
        clock.advance(timedelta(days=30))
        for _ in range(3):
            later = _decide(container, user)
            assert shown(decision).id not in _instance(container, later.tip_instance_id).probabilities
            clock.advance(timedelta(days=7))

    def test_a_decision_replays_exactly_from_its_seed_and_model(self, container: Container) -> None:
        user = _user(container, "replay@example.com")
        decision = _decide(container, user)
        row = _instance(container, decision.tip_instance_id)
        snapshot = row.context_snapshot
        tips = list(snapshot["actions"])
        replay = container.registry.decide(
            context=snapshot["shared"], candidates=[snapshot["actions"][t] for t in tips], seed=row.seed
        )
        assert tips[replay.live.decision.index] == row.tip_id
        assert replay.live.decision.propensity == row.propensity
        assert [s.decision.propensity for s in replay.shadows] == [s["propensity"] for s in row.shadows]


class TestSimulatedUser:
    @pytest.mark.parametrize("seed_start", [1, 1000])
    def test_tips_drift_toward_what_the_person_marks_done(
        self, make_container: ContainerFactory, clock: FakeClock, seed_start: int
    ) -> None:
        """A person who does every movement tip and dismisses the rest gets mostly movement tips.

        Statistical, with fixed seeds: over the last 150 of 400 decisions the
        share of movement tips must be at least three times what a uniform
        choice among the same candidates would give.
        """
        from tests.conftest import counting_seeds

        container = make_container(seeds=counting_seeds(seed_start))
        user = _user(container, "mover@example.com")
        shown_movement: list[bool] = []
        uniform_share: list[float] = []
        for _ in range(400):
            decision = _decide(container, user)
            is_movement = shown(decision).category == "movement"
            _react(container, user, decision, Reaction.DONE if is_movement else Reaction.DISMISS)
            container.worker.run_once()
            candidates = _instance(container, decision.tip_instance_id).probabilities
            movement = [t for t in candidates if container.advice.get(t).category == "movement"]  # type: ignore[union-attr]
            shown_movement.append(is_movement)
            uniform_share.append(len(movement) / len(candidates))
            clock.advance(timedelta(minutes=97))

        observed = sum(shown_movement[-150:]) / 150
        expected_uniform = sum(uniform_share[-150:]) / 150
        assert expected_uniform < 0.2
        assert observed >= 3 * expected_uniform, (observed, expected_uniform)

    def test_the_learner_keeps_up_with_a_burst_of_feedback(self, container: Container) -> None:
        users = [_user(container, f"burst{i}@example.com") for i in range(5)]
        decisions = [(user, _decide(container, user)) for user in users for _ in range(3)]
        for user, decision in decisions:
            _react(container, user, decision, Reaction.DONE)
        assert container.worker.run_once() == 30 + 5 * 6  # and each person's 6 consent.changed (integrations)
        assert container.registry.versions()["linucb"] == 15
        assert container.bus.lag(container.learner.name).events == 0
        with container.db.read() as session:
            assert len(session.scalars(select(TipInstanceRow.id)).all()) == 15


class TestDecisionLog:
    def test_logged_decisions_carry_snapshot_probabilities_shadows_and_reactions(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = _user(container, "log@example.com")
        first = _decide(container, user)
        _react(container, user, first, Reaction.DONE)
        clock.advance(timedelta(minutes=5))
        second = _decide(container, user)

        logged = container.recommender.logged_decisions()
        assert [d.tip_instance_id for d in logged] == [first.tip_instance_id, second.tip_instance_id]
        done, pending = logged
        assert done.reaction is Reaction.DONE
        assert pending.reaction is None
        assert done.action == shown(first).id
        assert done.probabilities[done.action] == pytest.approx(done.propensity)
        assert set(done.actions) == set(done.probabilities)
        assert {s.policy for s in done.shadows} == {"epsilon_greedy", "random"}
        assert container.recommender.logged_decisions(since=second.decided_at) == [pending]


class TestSendNothing:
    def test_the_policy_may_choose_to_send_nothing_and_that_choice_is_logged_and_learned(
        self, make_container: ContainerFactory, clock: FakeClock
    ) -> None:
        from tipwise.ml.serving import PolicySettings
        from tipwise.profile import PreferencesPatch

        container = make_container(policy_settings=PolicySettings(live="random"))
        user = _user(container, "quiet-hours@example.com")
        muted = [c for c in Category if c is not Category.FINANCE]
        container.profile.update_preferences(user_id=user, patch=PreferencesPatch(muted_categories=muted))
        nothing = None
        for _ in range(200):
            decision = container.recommender.next_tip(user_id=user, allow_nothing=True)
            assert decision is not None
            if decision.send_nothing:
                nothing = decision
                break
            clock.advance(timedelta(hours=13))
        assert nothing is not None, "uniform choice over ~11 candidates never chose 'send nothing' in 200 tries"
        assert nothing.tip is None

        logged = container.recommender.logged_decisions()[-1]
        assert logged.action == "send-nothing"
        assert logged.actions["send-nothing"] == {"send_nothing": 1.0}
        assert logged.probabilities["send-nothing"] == pytest.approx(nothing.propensity)
        history = container.recommender.history(user_id=user, limit=100).items
        assert nothing.tip_instance_id not in {item.tip_instance_id for item in history}
        with pytest.raises(Conflict, match="send nothing"):
            _react(container, user, nothing, Reaction.DONE)

        container.worker.run_once()
        before = container.registry.versions()["linucb"]
        clock.advance(container.learner.reward_map.wait + timedelta(minutes=1))
        container.worker.run_once()
        assert container.registry.versions()["linucb"] > before

    def test_without_allow_nothing_a_tip_is_always_chosen(self, container: Container, clock: FakeClock) -> None:
        user = _user(container, "always@example.com")
        for _ in range(20):
            decision = container.recommender.next_tip(user_id=user)
            assert decision is not None
            assert not decision.send_nothing
            assert "send-nothing" not in _instance(container, decision.tip_instance_id).probabilities
            clock.advance(timedelta(minutes=30))


class TestPlanThenRecord:
    def test_a_plan_overtaken_by_a_concurrent_decision_is_not_recorded_as_is(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = _user(container, "race@example.com")
        prefs = container.profile.preferences(user_id=user)
        decisions = container.recommender._decisions  # the service behind the facade's two transactions
        with container.db.read() as session:
            plan = decisions.plan(
                session, prefs=prefs, purposes=frozenset(Purpose), now=clock.now(), seed=7, explore=True
            )
        assert plan is not None
        with container.db.write() as session:
            assert decisions.still_eligible(session, plan)
            decisions.record(session, plan)
        # The same plan again (as a second, concurrent request would have it): the tip was just shown.
        with container.db.write() as session:
            assert not decisions.still_eligible(session, plan)
        assert plan.chosen is not None
        # Planned afresh (as the facade does when a plan is overtaken), another tip is shown.
        assert shown(container.recommender.next_tip(user_id=user)).id != plan.chosen.id


class TestBlasThreads:
    """The learner's matrix products keep to the configured BLAS threads (one by default); picks are not limited."""

    @pytest.mark.parametrize("threads", [1, 2])
    def test_the_learner_learns_and_publishes_within_its_limit(
        self, make_container: ContainerFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, threads: int
    ) -> None:
        import os

        from threadpoolctl import ThreadpoolController

        from tipwise.kernel.blas import blas_threads
        from tipwise.ml.pipelines import learner as learner_module
        from tipwise.ml.pipelines.settings import LearnerSettings

        assert LearnerSettings().blas_threads == 1
        seen: list[list[int]] = []
        learn, publish = vars(learner_module)["learn_together"], vars(learner_module)["copy_policy"]

        def learning(*args: object, **kwargs: object) -> None:
            seen.append(blas_threads())
            learn(*args, **kwargs)

        def publishing(*args: object, **kwargs: object) -> object:
            seen.append(blas_threads())
            return publish(*args, **kwargs)

        monkeypatch.setattr(learner_module, "learn_together", learning)
        monkeypatch.setattr(learner_module, "copy_policy", publishing)
        with ThreadpoolController().limit(limits=os.cpu_count() or 1, user_api="blas"):
            outside = blas_threads()
            if outside == [1]:
                pytest.skip("this machine's BLAS runs one thread whatever the limit (one core)")
            container = make_container(sqlite_url, learner_settings=LearnerSettings(blas_threads=threads))
            seen.clear()  # the publish of the models restored at start
            user = _user(container, "threads@example.com")
            _react(container, user, _decide(container, user), Reaction.DONE)
            container.worker.run_once()

            assert seen, "the learner learned and published nothing"
            assert all(counts == [min(threads, outside[0])] * len(outside) for counts in seen), seen
            assert blas_threads() == outside  # picks in the app run with the process's threads
