"""Replay from the log, model snapshots, and `ml-serve` giving the same decisions as in-process scoring."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.decisions import decide_and_react, shown
from tests.support.network import free_port
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.metrics import Metrics
from tipwise.ml.pipelines import LearnerSettings, replay, stored_states
from tipwise.ml.pipelines import repository as ml_repository
from tipwise.ml.pipelines.learner import same_state
from tipwise.ml.serving import CandidateSet, FileModelRegistry, HttpScorer, ModelSnapshot, PolicyRegistry, RidgeModel
from tipwise.ml.serving.app import SnapshotLoader, create_scoring_app
from tipwise.ml.serving.policies import FactoredRidge, layout_for
from tipwise.recommender import FEATURE_SPEC, FeedbackRequest, Reaction


def _session(container: Container, clock: FakeClock, *, decisions: int, email: str = "sim@example.com") -> None:
    """A person who does movement tips, snoozes focus tips, ignores sleep tips and dismisses the rest."""
    user = registered(container, email)
    for n in range(decisions):
        decision = container.recommender.next_tip(user_id=user)
        assert decision is not None
        reaction = {"movement": Reaction.DONE, "focus": Reaction.SNOOZE}.get(shown(decision).category, Reaction.DISMISS)
        if shown(decision).category != "sleep":
            if n % 7 == 3:  # now and then the reaction comes after the reward wait: a late reward
                clock.advance(container.learner.reward_map.wait + timedelta(minutes=1))
                container.worker.run_once()
            container.recommender.record_feedback(
                user_id=user,
                request=FeedbackRequest(
                    tip_instance_id=decision.tip_instance_id, reaction=reaction, idempotency_key=f"k{n}"
                ),
            )
        container.worker.run_once()
        clock.advance(timedelta(minutes=53))
    clock.advance(container.learner.reward_map.wait + timedelta(minutes=1))
    container.worker.run_once()


class TestReplay:
    def test_replaying_the_log_rebuilds_every_model_bit_for_bit(
        self, make_container: ContainerFactory, database_url: str, clock: FakeClock
    ) -> None:
        container = make_container(database_url)
        _session(container, clock, decisions=60)
        metrics = container.metrics.render().decode()
        assert 'tipwise_rewards_total{source="timeout"}' in metrics
        assert "tipwise_late_rewards_total 0.0" not in metrics

        rebuilt = replay(
            container.embedded_log().read(until=container.embedded_log().position("learner")),
            specs=container.registry.specs,
            features=container.registry.features,
            rewards=container.learner.reward_map,
        )
        stored = stored_states(container.db)
        assert set(rebuilt) == set(stored)
        for name, model in rebuilt.items():
            assert model.version == container.registry.versions()[name]
            assert same_state(model.state_bytes(), stored[name]), name

    def test_a_different_log_gives_a_different_model(self, make_container: ContainerFactory, clock: FakeClock) -> None:
        container = make_container()
        _session(container, clock, decisions=20)
        events = list(container.embedded_log().read())
        rebuilt = replay(
            events[:-5],
            specs=container.registry.specs,
            features=container.registry.features,
            rewards=container.learner.reward_map,
        )
        assert not same_state(rebuilt["linucb"].state_bytes(), stored_states(container.db)["linucb"])

    def test_a_model_stored_in_the_format_before_the_exact_statistics_is_rebuilt_from_the_log(
        self, make_container: ContainerFactory, clock: FakeClock
    ) -> None:
        container = make_container()
        _session(container, clock, decisions=15)
        expected = stored_states(container.db)
        dim = FactoredRidge(layout_for(FEATURE_SPEC, shared_weights=False), 5.0).dim
        with container.db.write() as session:
            row = ml_repository.models(session)["linucb"]
            # An untrained dense inverse: what a model of the old format held before it learned anything.
            row.state = RidgeModel(dim, 5.0).to_bytes()
            ml_repository.save_model(session, row)

        container.learner.restore()

        stored = stored_states(container.db)
        assert same_state(stored["linucb"], expected["linucb"])
        assert same_state(container.learner.model("linucb").state_bytes(), expected["linucb"])
        assert container.registry.versions()["linucb"] == container.learner.model("linucb").version > 0


class FlakyRegistry(FileModelRegistry):
    """The file registry, but publishing fails while `down` (as a remote MLflow that is unreachable)."""

    down = False

    def publish(self, snapshot: ModelSnapshot) -> ModelSnapshot:
        if self.down:
            raise ConnectionError("the model registry is unreachable")
        return super().publish(snapshot)


class TestSnapshots:
    def test_a_registry_that_fails_neither_stops_learning_nor_loses_the_snapshot(
        self, make_container: ContainerFactory, clock: FakeClock, tmp_path: Path
    ) -> None:
        flaky = FlakyRegistry(tmp_path / "flaky")
        flaky.down = True
        container = make_container(
            learner_settings=LearnerSettings(snapshot_every_rewards=1, snapshot_every_seconds=60), models=flaky
        )
        user = registered(container, "flaky@example.com")
        for n in range(2):
            decide_and_react(container, user, key=f"f{n}")
            container.worker.run_once()
        assert container.registry.versions()["linucb"] == 2  # learned and committed all the same
        assert flaky.latest("linucb") is None
        # One attempt, then a pause of the snapshot interval: not one attempt per batch.
        assert "tipwise_model_snapshot_failures_total 1.0" in container.metrics.render().decode()

        flaky.down = False
        clock.advance(timedelta(seconds=59))
        container.worker.run_once()
        assert flaky.latest("linucb") is None
        clock.advance(timedelta(seconds=1))
        container.worker.run_once()
        latest = flaky.latest("linucb")
        assert latest is not None
        assert latest.version == 2
        assert "tipwise_model_snapshot_failures_total 1.0" in container.metrics.render().decode()

    def test_the_learner_publishes_a_snapshot_every_n_rewards(
        self, make_container: ContainerFactory, clock: FakeClock
    ) -> None:
        container = make_container(
            learner_settings=LearnerSettings(snapshot_every_rewards=5, snapshot_every_seconds=3600)
        )
        _session(container, clock, decisions=12)
        snapshot = FileModelRegistry(container.settings.models_dir).latest("linucb")
        assert snapshot is not None
        assert snapshot.version >= 5
        assert snapshot.version <= container.registry.versions()["linucb"]
        assert snapshot.spec == container.learner.model("linucb").spec_dict()
        assert snapshot.feature_spec == "tipwise.tips/v3"
        assert snapshot.reward_map["values"]["done"] == 1.0
        assert snapshot.reward_map["wait_seconds"] == 24 * 3600

    def test_a_snapshot_records_the_training_range_across_restarts_and_erasures(
        self, make_container: ContainerFactory, sqlite_url: str, clock: FakeClock
    ) -> None:
        container = make_container(sqlite_url)
        alice, bob = registered(container, "alice@example.com"), registered(container, "bob@example.com")
        first = container.recommender.next_tip(user_id=alice)
        assert first is not None
        clock.advance(timedelta(minutes=5))
        reacted_at = clock.now()
        container.recommender.record_feedback(
            user_id=alice,
            request=FeedbackRequest(tip_instance_id=first.tip_instance_id, reaction=Reaction.DONE, idempotency_key="a"),
        )
        container.worker.run_once()
        assert container.recommender.next_tip(user_id=bob) is not None  # Bob never reacts
        container.worker.run_once()
        clock.advance(container.learner.reward_map.wait + timedelta(seconds=1))
        defaulted_at = clock.now()
        container.worker.run_once()  # publishes reward.defaulted for Bob's tip, stamped now
        container.worker.run_once()
        assert container.registry.versions()["linucb"] == 2

        written = {s.name: s for s in container.learner.snapshot()}
        assert {(s.trained_from, s.trained_until) for s in written.values()} == {(reacted_at, defaulted_at)}
        assert written["linucb"].learned_until == reacted_at  # the newest reaction; the default is none
        assert written["linucb"].metrics == {"rewards": 2}
        container.close()

        restarted = make_container(sqlite_url)
        again = FileModelRegistry(restarted.settings.models_dir)
        restarted.learner.snapshot()
        latest = again.latest("linucb")
        assert latest is not None
        assert (latest.trained_from, latest.trained_until) == (reacted_at, defaulted_at)
        assert latest.learned_until is None  # nothing learned since the restart: no latency to measure

        restarted.privacy.erase(user_id=alice)
        restarted.worker.run_once()
        restarted.worker.run_once()
        rebuilt = again.latest("linucb")
        assert rebuilt is not None
        assert rebuilt.version == 1
        assert (rebuilt.trained_from, rebuilt.trained_until) == (defaulted_at, defaulted_at)

    def test_feedback_to_decision_latency_is_measured_once_per_model(
        self, container: Container, clock: FakeClock
    ) -> None:
        user = registered(container, "lat@example.com")
        decision = container.recommender.next_tip(user_id=user)
        assert decision is not None
        container.recommender.record_feedback(
            user_id=user,
            request=FeedbackRequest(
                tip_instance_id=decision.tip_instance_id, reaction=Reaction.DONE, idempotency_key="k"
            ),
        )
        container.worker.run_once()
        clock.advance(timedelta(seconds=3))
        container.recommender.next_tip(user_id=user)
        container.recommender.next_tip(user_id=user)
        text = container.metrics.render().decode()
        assert "tipwise_feedback_to_decision_seconds_count 1.0" in text
        assert "tipwise_feedback_to_decision_seconds_sum 3.0" in text


ScoringServer = tuple[str, PolicyRegistry, Metrics]


@pytest.fixture
def scoring_server(container: Container) -> Iterator[ScoringServer]:
    """`ml-serve` on a free port, reading the container's snapshots."""
    registry = PolicyRegistry(specs=container.registry.specs, live=container.registry.live, features=FEATURE_SPEC)
    metrics = Metrics()
    app = create_scoring_app(
        registry=registry, models=FileModelRegistry(container.settings.models_dir), metrics=metrics, poll_seconds=0.05
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "ml-serve stopped"
        assert time.monotonic() < deadline, "ml-serve did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", registry, metrics
    server.should_exit = True
    thread.join(10)


class TestMlServe:
    def test_remote_and_in_process_scoring_decide_identically(
        self, container: Container, clock: FakeClock, scoring_server: ScoringServer
    ) -> None:
        url, served, _ = scoring_server
        _session(container, clock, decisions=30)
        container.learner.snapshot()
        deadline = time.monotonic() + 10
        while served.versions() != container.registry.versions():
            assert time.monotonic() < deadline, "ml-serve did not load the snapshot"
            time.sleep(0.05)

        logged = container.recommender.logged_decisions()
        remote = HttpScorer(url)
        try:
            for seed, decision in enumerate(logged[:25]):
                candidates = [decision.actions[t] for t in decision.actions]
                prepared = CandidateSet(FEATURE_SPEC, candidates)  # what the recommender hands over in process
                for explore in (True, False):
                    local = container.registry.decide(
                        context=decision.shared, candidates=prepared, seed=seed, explore=explore
                    )
                    assert (
                        remote.decide(context=decision.shared, candidates=candidates, seed=seed, explore=explore)
                        == local
                    )
        finally:
            remote.close()

    def test_the_app_decides_through_ml_serve_when_a_scorer_url_is_set(
        self, make_container: ContainerFactory, scoring_server: ScoringServer
    ) -> None:
        url, _, served_metrics = scoring_server
        wired = make_container(settings={"scorer_url": url})
        user = registered(wired, "remote@example.com")
        decision = wired.recommender.next_tip(user_id=user)
        assert decision is not None
        assert decision.policy == "linucb"
        scored = served_metrics.render().decode()
        assert 'tipwise_http_request_duration_seconds_count{method="POST",route="/v1/score",status="200"} 1.0' in scored

    def test_hot_reload_swaps_models_without_failing_requests(
        self, container: Container, clock: FakeClock, scoring_server: ScoringServer
    ) -> None:
        url, served, _ = scoring_server
        user = registered(container, "hot@example.com")
        first = container.recommender.next_tip(user_id=user)
        assert first is not None
        decision_input = container.recommender.logged_decisions()[0]
        candidates = [decision_input.actions[t] for t in decision_input.actions]

        failures: list[BaseException] = []
        stop = threading.Event()

        def hammer() -> None:
            scorer = HttpScorer(url)
            try:
                while not stop.is_set():
                    scorer.decide(context=decision_input.shared, candidates=candidates, seed=1)
            except BaseException as exc:
                failures.append(exc)
            finally:
                scorer.close()

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for thread in threads:
            thread.start()
        for n in range(10):
            container.recommender.record_feedback(
                user_id=user,
                request=FeedbackRequest(
                    tip_instance_id=container.recommender.next_tip(user_id=user).tip_instance_id,  # type: ignore[union-attr]
                    reaction=Reaction.DONE,
                    idempotency_key=f"hot{n}",
                ),
            )
            container.worker.run_once()
            container.learner.snapshot()
            clock.advance(timedelta(hours=1))
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert failures == []
        deadline = time.monotonic() + 10
        while served.versions()["linucb"] != container.registry.versions()["linucb"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert served.versions()["linucb"] == 10


class TestSnapshotLoader:
    def test_a_snapshot_with_another_spec_is_not_served(self, container: Container, clock: FakeClock) -> None:
        _session(container, clock, decisions=5)
        container.learner.snapshot()
        from tipwise.ml.serving import LinUCBSpec

        other = PolicyRegistry(specs={"linucb": LinUCBSpec(alpha=0.123)}, live="linucb", features=FEATURE_SPEC)
        loader = SnapshotLoader(
            registry=other, models=FileModelRegistry(container.settings.models_dir), metrics=Metrics()
        )
        assert loader.refresh() == []
        assert other.versions() == {"linucb": 0}
