"""Off-policy evaluation of Tipwise's own decision log, the promotion gate and its commands.

A simulated person does every movement tip, dismisses every other tip and
ignores every tenth one; the live LinUCB (exploring more than by default, see
`ExploringPolicies`) learns from it while the shadows are logged. Because the
person's rewards are known for every candidate, the value of a uniform choice
among each decision's candidates is known exactly.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import ContainerFactory
from tests.support.consents import registered
from tests.support.decisions import shown
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.ml.pipelines import (
    Estimate,
    EvaluationReport,
    InvalidPromotion,
    PolicyEvaluation,
    PromotionRefused,
    current_live_policy,
    evaluate,
    gate,
    plot,
    promote,
    promotion_history,
)
from tipwise.ml.pipelines.commands import register
from tipwise.ml.serving import LinUCBSpec, PolicySettings, PolicySpec
from tipwise.recommender import FeedbackRequest, LoggedDecision, Reaction

DECISIONS = 150
IGNORE_EVERY = 10
STEP = timedelta(minutes=97)
POLICIES = ("linucb", "epsilon_greedy", "random")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, kw_only=True)
class Simulation:
    container: Container
    now: datetime
    logged: list[LoggedDecision]
    ignored: frozenset[uuid.UUID]
    report: EvaluationReport

    def rewarded(self, decision: LoggedDecision, tip_id: str) -> float:
        """Return the reward the person would have given `tip_id` in place of what was shown."""
        if decision.tip_instance_id in self.ignored:
            return 0.0  # no reaction: the default reward, whichever tip it was
        tip = self.container.advice.get(tip_id)
        assert tip is not None
        return 1.0 if tip.category == "movement" else 0.0

    def settled(self) -> list[LoggedDecision]:
        wait = self.container.learner.reward_map.wait
        return [d for d in self.logged if d.reaction is not None or self.now - d.decided_at > wait]

    def uniform_value(self) -> float:
        """Return the exact value of choosing uniformly among each settled decision's candidates."""
        values = [sum(self.rewarded(d, tip) for tip in d.probabilities) / len(d.probabilities) for d in self.settled()]
        return sum(values) / len(values)


def simulate(container: Container, clock: FakeClock) -> Simulation:
    user = registered(container, "mover@example.com")
    ignored: set[uuid.UUID] = set()
    for step in range(DECISIONS):
        decision = container.recommender.next_tip(user_id=user)
        assert decision is not None
        if step % IGNORE_EVERY == IGNORE_EVERY - 1:
            ignored.add(decision.tip_instance_id)
        else:
            reaction = Reaction.DONE if shown(decision).category == "movement" else Reaction.DISMISS
            container.recommender.record_feedback(
                user_id=user,
                request=FeedbackRequest(
                    tip_instance_id=decision.tip_instance_id,
                    reaction=reaction,
                    idempotency_key=str(decision.tip_instance_id),
                ),
            )
        container.worker.run_once()
        clock.advance(STEP)
    now = clock.now()
    report = evaluate(container.recommender, rewards=container.learner.reward_map, now=now)
    return Simulation(
        container=container,
        now=now,
        logged=container.recommender.logged_decisions(),
        ignored=frozenset(ignored),
        report=report,
    )


class ExploringPolicies(PolicySettings):
    """The default policies, with a live LinUCB that spreads half its probability evenly over the candidates.

    IPS can only see what the logging policy shows. With the default floor
    (0.05) a uniform target's value rests on a handful of rare explorations in
    150 decisions (an effective sample size of about 6) and no interval built
    from the sample can be trusted; a floor of 0.5 keeps every weight <= 2.
    """

    def specs(self) -> dict[str, PolicySpec]:
        return {**super().specs(), "linucb": LinUCBSpec(floor=0.5)}


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    return make_container(policy_settings=ExploringPolicies())


@pytest.fixture
def simulation(container: Container, clock: FakeClock) -> Simulation:
    return simulate(container, clock)


class TestEvaluationOfASimulatedPerson:
    """One simulation is slow (about 10 s), so each test checks several related facts about the same log."""

    def test_the_report_estimates_every_policy_on_the_settled_decisions_consistently_with_known_values(
        self, simulation: Simulation, tmp_path: Path
    ) -> None:
        report = simulation.report
        settled = simulation.settled()

        # Every configured policy, every estimator, each value inside its interval, all on the same rows.
        assert report.live == "linucb"
        assert [(p.policy, p.live) for p in report.policies] == [(name, name == "linucb") for name in POLICIES]
        for evaluation in report.policies:
            assert set(evaluation.estimates) == {"ips", "snips", "dr"}
            for estimate in evaluation.estimates.values():
                assert estimate.lower <= estimate.value <= estimate.upper, (evaluation.policy, estimate)
                assert estimate.lower < estimate.upper
                assert estimate.n == report.n

        # Decisions still inside the reward wait (the ignored ones of the last day) are skipped.
        assert len(simulation.logged) == DECISIONS
        assert report.n == len(settled) == DECISIONS - 2
        assert report.skipped == {"pending": 2}

        # The live policy's SNIPS estimate is its observed average reward.
        observed = [simulation.rewarded(d, d.action) for d in settled]
        assert report.on_policy is not None
        assert report.on_policy.value == pytest.approx(sum(observed) / len(observed))
        snips = report.policy("linucb").estimate("snips")
        assert snips.lower <= report.on_policy.value <= snips.upper
        assert snips.value == pytest.approx(report.on_policy.value)

        # The random shadow's IPS interval covers the exact value of a uniform choice among the candidates.
        truth = simulation.uniform_value()
        ips = report.policy("random").estimate("ips")
        assert ips.lower <= truth <= ips.upper, (truth, ips)
        assert abs(ips.value - truth) < 0.05

        # The live policy learned: every estimator puts it above the random shadow's interval.
        for estimator in ("ips", "snips", "dr"):
            assert report.policy("linucb").estimate(estimator).value > report.policy("random").estimate(estimator).upper

        # Greedy epsilon-greedy beats a live LinUCB that explores half the time: the gate lets it through.
        assert gate(report, candidate="epsilon_greedy", estimator="dr").passed
        assert not gate(report, candidate="random", estimator="dr").passed

        # The report survives JSON and draws a PNG.
        data = json.loads(json.dumps(report.to_dict()))
        assert [p["policy"] for p in data["policies"]] == list(POLICIES)
        assert data["policies"][2]["estimates"]["ips"]["value"] == ips.value
        path = plot(report, tmp_path / "plots" / "evaluation.png")
        assert path.read_bytes().startswith(PNG_SIGNATURE)

    def test_the_gate_refuses_the_random_shadow_and_force_promotes_it_from_the_command_line(
        self, simulation: Simulation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The commands build their own container from TIPWISE_*, on the data dir of the `container` fixture.
        monkeypatch.setenv("TIPWISE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("TIPWISE_SECRET_KEY", "test-secret-key-with-enough-length")
        monkeypatch.delenv("TIPWISE_DATABASE_URL", raising=False)
        monkeypatch.delenv("TIPWISE_POLICY_LIVE", raising=False)
        cli = typer.Typer()
        register(cli)
        runner = CliRunner()
        db = simulation.container.db

        # The commands run on the system clock, long after the simulated days: every decision is settled.
        settled = evaluate(
            simulation.container.recommender,
            rewards=simulation.container.learner.reward_map,
            now=simulation.now + timedelta(days=365),
        )
        evaluated = runner.invoke(cli, ["evaluate", "--json", str(tmp_path / "report.json")])
        assert evaluated.exit_code == 0, evaluated.output
        assert f"Off-policy evaluation of {DECISIONS} decisions" in evaluated.output
        assert "linucb (live)" in evaluated.output
        for name in ("IPS", "SNIPS", "DR", "epsilon_greedy", "random"):
            assert name in evaluated.output
        assert (tmp_path / "data" / "evaluation.png").read_bytes().startswith(PNG_SIGNATURE)
        written = json.loads((tmp_path / "report.json").read_text())
        assert written["n"] == settled.n == DECISIONS
        assert written["policies"][2]["estimates"]["dr"]["value"] == pytest.approx(
            settled.policy("random").estimate("dr").value
        )

        result = gate(settled, candidate="random", estimator="dr")
        assert result.candidate_lower < result.live_estimate
        refused = runner.invoke(cli, ["policy", "promote", "random"])
        assert refused.exit_code == 1
        assert "promotion of 'random' refused: random's DR lower bound" in refused.output
        assert promotion_history(db) == []
        assert current_live_policy(db) is None

        forced = runner.invoke(cli, ["policy", "promote", "random", "--force", "--estimator", "snips", "--note", "try"])
        assert forced.exit_code == 0, forced.output
        assert "promoted 'random' (forced)" in forced.output
        assert current_live_policy(db) == "random"
        (promotion,) = promotion_history(db)
        assert (promotion.policy, promotion.forced, promotion.estimator, promotion.note) == (
            "random",
            True,
            "snips",
            "try",
        )
        assert promotion.candidate_lower == pytest.approx(settled.policy("random").estimate("snips").lower)
        assert promotion.live_estimate == pytest.approx(settled.policy("linucb").estimate("snips").value)

        listed = runner.invoke(cli, ["policy", "list"])
        assert listed.exit_code == 0, listed.output
        rows = [line.split() for line in listed.output.splitlines() if "model version" in line]
        assert [row[:2] for row in rows] == [
            ["linucb", "linucb"],
            ["epsilon_greedy", "epsilon_greedy"],
            ["random", "uniform"],
        ]
        assert sum(row[2] == "live" for row in rows) == 1
        history = [line for line in listed.output.splitlines() if line.startswith("  #")]
        assert len(history) == 1
        assert all(word in history[0] for word in ("random", "FORCED", "SNIPS", "(try)"))

        since = runner.invoke(cli, ["evaluate", "--since", simulation.now.isoformat()])
        assert since.exit_code == 1
        assert "nothing to evaluate: the decision log is empty" in since.output


def _estimate(value: float, half_width: float, effective: float = 400.0) -> Estimate:
    return Estimate(
        estimator="dr",
        value=value,
        lower=value - half_width,
        upper=value + half_width,
        std_error=half_width / 1.96,
        confidence=0.95,
        n=500,
        effective_sample_size=effective,
    )


def _report(live: float, candidate: float, half_width: float = 0.05, effective: float = 400.0) -> EvaluationReport:
    return EvaluationReport(
        created_at=datetime(2026, 11, 25, tzinfo=UTC),
        since=None,
        live="linucb",
        n=500,
        skipped={},
        reward_map_version="test",
        confidence=0.95,
        on_policy=None,
        policies=(
            PolicyEvaluation(policy="linucb", live=True, estimates={"dr": _estimate(live, half_width)}),
            PolicyEvaluation(
                policy="epsilon_greedy", live=False, estimates={"dr": _estimate(candidate, half_width, effective)}
            ),
        ),
    )


class TestGate:
    def test_the_live_policy_unknown_policies_and_unknown_estimators_are_rejected(self) -> None:
        report = _report(live=0.4, candidate=0.5)
        with pytest.raises(InvalidPromotion, match="'linucb' is already the live policy"):
            gate(report, candidate="linucb")
        with pytest.raises(InvalidPromotion, match="policy 'vw' was not evaluated"):
            gate(report, candidate="vw")
        with pytest.raises(InvalidPromotion, match="unknown estimator 'dm'"):
            gate(report, candidate="epsilon_greedy", estimator="dm")
        with pytest.raises(InvalidPromotion, match="the report has no SNIPS estimates"):
            gate(report, candidate="epsilon_greedy", estimator="snips")

    def test_a_candidate_the_log_says_too_little_about_is_refused_however_good_it_looks(self) -> None:
        thin = gate(_report(live=0.40, candidate=0.90, effective=49.0), candidate="epsilon_greedy")
        assert thin.candidate_lower > thin.live_estimate
        assert not thin.passed
        assert "effective sample of 49.0 of 500 decisions" in thin.explain()
        assert gate(_report(live=0.40, candidate=0.90, effective=50.0), candidate="epsilon_greedy").passed

    def test_the_candidates_lower_bound_is_compared_with_the_live_value(self) -> None:
        result = gate(_report(live=0.40, candidate=0.50, half_width=0.05), candidate="epsilon_greedy")
        assert result.candidate_lower == pytest.approx(0.45)
        assert (result.live_estimate, result.n) == (0.40, 500)
        assert result.passed
        assert not gate(_report(live=0.40, candidate=0.50, half_width=0.2), candidate="epsilon_greedy").passed


class TestPromotionPersistence:
    """On SQLite and on PostgreSQL."""

    def test_a_candidate_whose_lower_bound_beats_the_live_estimate_is_promoted_without_force(
        self, migrated: Database
    ) -> None:
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        promotion = promote(migrated, candidate="epsilon_greedy", report=_report(live=0.40, candidate=0.50), now=now)

        assert not promotion.forced
        assert promotion.candidate_lower == pytest.approx(0.45)
        assert promotion.live_estimate == pytest.approx(0.40)
        assert promotion.promoted_at == now
        assert current_live_policy(migrated) == "epsilon_greedy"

    def test_a_lower_bound_equal_to_the_live_estimate_is_refused_and_nothing_is_recorded(
        self, migrated: Database
    ) -> None:
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        with pytest.raises(PromotionRefused, match=r"lower bound 0\.4000 does not beat linucb's estimate 0\.4000"):
            promote(migrated, candidate="epsilon_greedy", report=_report(live=0.40, candidate=0.45), now=now)
        assert promotion_history(migrated) == []
        assert current_live_policy(migrated) is None

    def test_the_newest_promotion_names_the_live_policy_and_history_lists_every_one(self, migrated: Database) -> None:
        first_at = datetime(2026, 11, 25, 12, tzinfo=UTC)
        first = promote(migrated, candidate="epsilon_greedy", report=_report(0.4, 0.5), now=first_at)
        second = promote(migrated, candidate="random", report=None, now=first_at, force=True, note="rollback drill")

        assert current_live_policy(migrated) == "random"
        history = promotion_history(migrated)
        assert history == [second, first]
        assert (second.forced, second.candidate_lower, second.live_estimate) == (True, None, None)
        assert second.id > first.id

    def test_an_unconfigured_policy_is_not_promoted_even_with_force(self, migrated: Database) -> None:
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        with pytest.raises(InvalidPromotion, match="policy 'vw' is not configured"):
            promote(migrated, candidate="vw", report=None, now=now, force=True, configured=POLICIES)
        assert promotion_history(migrated) == []

    def test_without_an_evaluation_only_force_promotes(self, migrated: Database) -> None:
        now = datetime(2026, 11, 25, 12, tzinfo=UTC)
        with pytest.raises(PromotionRefused, match="there is no evaluation to decide on"):
            promote(migrated, candidate="random", report=None, now=now)
        assert current_live_policy(migrated) is None


class TestPromotionTakesEffect:
    def test_the_next_start_serves_the_promoted_policy_as_live(
        self, make_container: ContainerFactory, database_url: str
    ) -> None:
        before = make_container(database_url)
        assert before.registry.live == "linucb"
        promote(
            before.db,
            candidate="epsilon_greedy",
            report=None,
            now=datetime(2026, 11, 25, 12, tzinfo=UTC),
            force=True,
            configured=POLICIES,
        )
        before.close()

        after = make_container(database_url)
        assert after.registry.live == "epsilon_greedy"
        assert set(after.registry.shadow_names) == {"linucb", "random"}
        user = registered(after, "promoted@example.com")
        decision = after.recommender.next_tip(user_id=user)
        assert decision is not None
        assert decision.policy == "epsilon_greedy"
