"""The evaluation of every policy on Tipwise's own decision log, and its plot.

Each logged decision carries the live policy's probability of every
candidate and every shadow policy's too, so all of them are estimated on the
same rows: the target of a policy is its logged distribution (for the live
policy, the one it decided with). The reward of a decision is what the
learner learned from it: the reward-map value of a reaction that came within
the reward wait, the default reward once the wait has passed without one
(a late reaction does not change it, as for the learner); a decision still
inside its wait is skipped. The DR reward model reads the logged feature
snapshot of every candidate (train/serve parity), never a recomputation.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tipwise.ml.pipelines.evaluation import (
    DR,
    IPS,
    MIN_ROUNDS,
    SNIPS,
    Estimate,
    Estimator,
    LoggedRound,
    Vector,
    sample_mean,
)
from tipwise.ml.pipelines.rewards import RewardMap
from tipwise.ml.serving import FeatureSpec
from tipwise.recommender import FEATURE_SPEC, LoggedDecision, RecommenderFacade

DEFAULT_ESTIMATORS: tuple[Estimator, ...] = (IPS(), SNIPS(), DR())

# Why a decision was left out of an evaluation.
PENDING = "pending"  # no reaction yet and the reward wait has not passed
MISSING_POLICY = "missing_policy"  # logged before one of the evaluated policies ran
FEATURE_SPEC_CHANGED = "feature_spec_changed"  # its snapshot uses other features than the reward model
MALFORMED = "malformed"  # a distribution that does not cover the logged candidates


@dataclass(frozen=True, kw_only=True)
class EvaluationInputs:
    """The decision log as off-policy evaluation reads it: one round per usable decision."""

    rounds: tuple[LoggedRound, ...]
    # Per policy, its probability of every candidate in every round (same order as `rounds`).
    targets: Mapping[str, tuple[Vector, ...]]
    # Which policy was live (logging) in each round.
    logged_by: tuple[str, ...]
    skipped: Mapping[str, int]


@dataclass(frozen=True, kw_only=True)
class PolicyEvaluation:
    """One policy's estimated average reward by each estimator."""

    policy: str
    live: bool
    estimates: Mapping[str, Estimate]

    @property
    def n(self) -> int:
        return next(iter(self.estimates.values())).n

    def estimate(self, estimator: str) -> Estimate:
        """Return the estimate by `estimator` (e.g. "dr"); raises KeyError if it was not run."""
        return self.estimates[estimator]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "live": self.live,
            "n": self.n,
            "estimates": {name: estimate.to_dict() for name, estimate in self.estimates.items()},
        }


@dataclass(frozen=True, kw_only=True)
class EvaluationReport:
    """Every policy estimated on the same logged decisions, and what the live policy actually earned."""

    created_at: datetime
    since: datetime | None
    live: str
    n: int
    skipped: Mapping[str, int]
    reward_map_version: str
    confidence: float
    # The average reward observed on the decisions the live policy made, with a normal interval; None if none.
    on_policy: Estimate | None
    policies: tuple[PolicyEvaluation, ...]

    @property
    def estimators(self) -> tuple[str, ...]:
        return tuple(self.policies[0].estimates) if self.policies else ()

    def policy(self, name: str) -> PolicyEvaluation:
        """Return the evaluation of policy `name`; raises KeyError if it was not evaluated."""
        for evaluation in self.policies:
            if evaluation.policy == name:
                return evaluation
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "created_at": self.created_at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "live": self.live,
            "n": self.n,
            "skipped": dict(self.skipped),
            "reward_map_version": self.reward_map_version,
            "confidence": self.confidence,
            "on_policy": self.on_policy.to_dict() if self.on_policy else None,
            "policies": [evaluation.to_dict() for evaluation in self.policies],
        }


def reward_of(decision: LoggedDecision, *, rewards: RewardMap, now: datetime) -> float | None:
    """Return the reward the learner gives `decision`, or None while it is still waiting for a reaction."""
    if decision.reaction is not None:
        on_time = decision.reacted_at is None or decision.reacted_at - decision.decided_at <= rewards.wait
        if on_time:
            return rewards.reward(decision.reaction.value)
        return rewards.default
    if now - decision.decided_at > rewards.wait:
        return rewards.default
    return None


def distributions_of(decision: LoggedDecision) -> dict[str, Mapping[str, float]]:
    """Return every policy's logged probability of each candidate: the live one's and each shadow's."""
    found: dict[str, Mapping[str, float]] = {shadow.policy: shadow.probabilities for shadow in decision.shadows}
    found[decision.policy] = decision.probabilities
    return found


def build_inputs(
    decisions: Sequence[LoggedDecision],
    *,
    policies: Sequence[str],
    rewards: RewardMap,
    now: datetime,
    features: FeatureSpec = FEATURE_SPEC,
) -> EvaluationInputs:
    """Turn logged decisions into rounds and per-policy targets; decisions that cannot be used are counted."""
    rounds: list[LoggedRound] = []
    targets: dict[str, list[Vector]] = {name: [] for name in policies}
    logged_by: list[str] = []
    skipped: Counter[str] = Counter()
    for decision in decisions:
        reward = reward_of(decision, rewards=rewards, now=now)
        if reward is None:
            skipped[PENDING] += 1
            continue
        distributions = distributions_of(decision)
        if any(name not in distributions for name in policies):
            skipped[MISSING_POLICY] += 1
            continue
        if decision.feature_spec != features.name:
            skipped[FEATURE_SPEC_CHANGED] += 1
            continue
        tips = list(decision.probabilities)
        try:
            round_targets = {name: np.array([distributions[name][tip] for tip in tips]) for name in policies}
            candidates = features.matrix(decision.shared, [decision.actions[tip] for tip in tips])
            row = LoggedRound(
                candidates=candidates, action=tips.index(decision.action), propensity=decision.propensity, reward=reward
            )
        except (KeyError, ValueError):
            skipped[MALFORMED] += 1
            continue
        rounds.append(row)
        for name in policies:
            targets[name].append(round_targets[name])
        logged_by.append(decision.policy)
    return EvaluationInputs(
        rounds=tuple(rounds),
        targets={name: tuple(values) for name, values in targets.items()},
        logged_by=tuple(logged_by),
        skipped=dict(skipped),
    )


def build_report(
    decisions: Sequence[LoggedDecision],
    *,
    rewards: RewardMap,
    now: datetime,
    since: datetime | None = None,
    live: str | None = None,
    policies: Sequence[str] | None = None,
    estimators: Sequence[Estimator] = DEFAULT_ESTIMATORS,
    features: FeatureSpec = FEATURE_SPEC,
) -> EvaluationReport:
    """Estimate every policy on `decisions` with every estimator.

    By default the live policy and the set of policies are those of the newest
    decision (the configuration now running); decisions lacking any of them
    are skipped, so every policy is estimated on exactly the same rows.
    Raises ValueError when fewer than two decisions are usable.
    """
    if not estimators:
        raise ValueError("at least one estimator is needed")
    if not decisions:
        raise ValueError("the decision log is empty")
    newest = decisions[-1]
    live = live or newest.policy
    names = list(policies) if policies is not None else _policies_of(newest, live)
    if live not in names:
        names.insert(0, live)
    inputs = build_inputs(decisions, policies=names, rewards=rewards, now=now, features=features)
    if len(inputs.rounds) < MIN_ROUNDS:
        raise ValueError(
            f"only {len(inputs.rounds)} of {len(decisions)} logged decisions can be evaluated "
            f"(skipped: {dict(inputs.skipped) or 'none'}); at least {MIN_ROUNDS} are needed"
        )
    evaluations = tuple(
        PolicyEvaluation(
            policy=name,
            live=name == live,
            estimates={
                estimator.name: estimator.estimate(inputs.rounds, inputs.targets[name]) for estimator in estimators
            },
        )
        for name in names
    )
    confidence = estimators[0].confidence
    return EvaluationReport(
        created_at=now,
        since=since,
        live=live,
        n=len(inputs.rounds),
        skipped=inputs.skipped,
        reward_map_version=rewards.version,
        confidence=confidence,
        on_policy=_on_policy(inputs, live=live, confidence=confidence),
        policies=evaluations,
    )


def evaluate(
    recommender: RecommenderFacade,
    *,
    rewards: RewardMap,
    now: datetime,
    since: datetime | None = None,
    live: str | None = None,
    estimators: Sequence[Estimator] = DEFAULT_ESTIMATORS,
) -> EvaluationReport:
    """Read the decision log since `since` from the recommender and evaluate every policy on it.

    Decisions of people who did not grant model training are left out: the
    evaluation fits a reward model and chooses the shared policy, which is
    aggregate training.
    """
    return build_report(
        [decision for decision in recommender.logged_decisions(since=since) if decision.model_training],
        rewards=rewards,
        now=now,
        since=since,
        live=live,
        estimators=estimators,
    )


def _policies_of(newest: LoggedDecision, live: str) -> list[str]:
    logged = [newest.policy, *(shadow.policy for shadow in newest.shadows)]
    return [live, *(name for name in logged if name != live)]


def _on_policy(inputs: EvaluationInputs, *, live: str, confidence: float) -> Estimate | None:
    observed = [row.reward for row, by in zip(inputs.rounds, inputs.logged_by, strict=True) if by == live]
    if len(observed) < MIN_ROUNDS:
        return None
    return sample_mean(observed, confidence=confidence, name="on_policy")


def plot(report: EvaluationReport, path: Path) -> Path:
    """Draw every policy's estimates with their intervals, one marker per estimator, into a PNG at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_png(report))
    return path


def render_png(report: EvaluationReport) -> bytes:
    """Return the plot of `plot` as PNG bytes (for the operator page)."""
    # Import here: matplotlib is slow to import and only this command draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = report.estimators
    positions = np.arange(len(report.policies), dtype=np.float64)
    figure = Figure(figsize=(max(6.0, 1.8 * len(report.policies) + 2.0), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.7 / max(len(names), 1)
    for index, name in enumerate(names):
        estimates = [evaluation.estimate(name) for evaluation in report.policies]
        values = np.array([e.value for e in estimates])
        errors = np.array([[e.value - e.lower for e in estimates], [e.upper - e.value for e in estimates]])
        axes.errorbar(
            positions - 0.35 + width * (index + 0.5),
            values,
            yerr=errors,
            fmt="o",
            capsize=4,
            label=name.upper(),
        )
    if report.on_policy is not None:
        axes.axhline(report.on_policy.value, color="grey", linestyle="--", linewidth=1, label="live, observed")
        axes.axhspan(report.on_policy.lower, report.on_policy.upper, color="grey", alpha=0.15)
    axes.set_xticks(
        positions, [f"{e.policy}\n(live)" if e.live else e.policy for e in report.policies], fontsize="small"
    )
    axes.set_ylabel("estimated average reward")
    axes.set_title(f"Off-policy evaluation: {report.n} decisions, {report.confidence:.0%} intervals", fontsize="medium")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


@dataclass(frozen=True, kw_only=True)
class RewardHistory:
    """What the live policies earned: per day, and as a running average over decisions."""

    days: tuple[date, ...]
    daily_mean: tuple[float, ...]
    daily_n: tuple[int, ...]
    running_mean: tuple[float, ...]


def reward_history(decisions: Sequence[LoggedDecision], *, rewards: RewardMap, now: datetime) -> RewardHistory:
    """Summarize the settled rewards of logged decisions by day and as a learning curve."""
    settled = [(d.decided_at, r) for d in decisions if (r := reward_of(d, rewards=rewards, now=now)) is not None]
    by_day: dict[date, list[float]] = {}
    for decided_at, reward in settled:
        by_day.setdefault(decided_at.date(), []).append(reward)
    days = tuple(sorted(by_day))
    values = np.array([reward for _, reward in settled], dtype=np.float64)
    running = np.cumsum(values) / np.arange(1, values.size + 1) if values.size else values
    return RewardHistory(
        days=days,
        daily_mean=tuple(float(np.mean(by_day[day])) for day in days),
        daily_n=tuple(len(by_day[day]) for day in days),
        running_mean=tuple(float(v) for v in running),
    )


def render_reward_history_png(history: RewardHistory) -> bytes:
    """Return a PNG with the learning curve (running mean reward) and the mean reward per day."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    curve, daily = figure.subplots(1, 2)
    curve.plot(np.arange(1, len(history.running_mean) + 1), history.running_mean, color="#2f6f5e")
    curve.set_xlabel("settled decisions")
    curve.set_ylabel("running mean reward")
    curve.set_title("Learning curve", fontsize="medium")
    curve.grid(alpha=0.3)
    daily.bar([d.isoformat() for d in history.days], history.daily_mean, color="#2f6f5e")
    daily.set_ylabel("mean reward")
    daily.set_title("Reward per day (UTC)", fontsize="medium")
    daily.tick_params(axis="x", labelrotation=45, labelsize="small")
    daily.grid(axis="y", alpha=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
