"""The operator view (`/ops`): off-policy evaluation of every policy, the learning curve, reward per day."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tipwise.kernel.clock import Clock
from tipwise.ml.pipelines import (
    EvaluationReport,
    RewardMap,
    render_png,
    render_reward_history_png,
    reward_history,
)
from tipwise.recommender import RecommenderFacade


@dataclass(frozen=True, kw_only=True)
class OperatorView:
    """What the operator pages read; each call reads the decision log afresh."""

    recommender: RecommenderFacade
    rewards: RewardMap
    clock: Clock
    live_policy: Callable[[], str]
    model_versions: Callable[[], dict[str, int]]
    evaluate: Callable[[], EvaluationReport]
    # The event bus as the operator sees it: kind, outbox backlog, dead letters (see `app.py`).
    bus_status: Callable[[], dict[str, Any]]

    def report(self) -> EvaluationReport | None:
        """Evaluate every policy on the settled decisions; None while there are too few."""
        try:
            return self.evaluate()
        except ValueError:
            return None

    def summary(self) -> dict[str, Any]:
        report = self.report()
        return {
            "live": self.live_policy(),
            "versions": self.model_versions(),
            "report": report,
            "decisions": len(self.recommender.logged_decisions()),
            "bus": self.bus_status(),
        }

    def evaluation_png(self) -> bytes | None:
        report = self.report()
        return render_png(report) if report is not None and report.policies else None

    def rewards_png(self) -> bytes:
        history = reward_history(self.recommender.logged_decisions(), rewards=self.rewards, now=self.clock.now())
        return render_reward_history_png(history)
