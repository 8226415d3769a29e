"""The promotion gate: a shadow becomes live only when the log says it is better, and every promotion is recorded.

A candidate passes when the lower bound of its estimated value beats the
live policy's estimated value, by the same estimator on the same logged
decisions. `force` overrides a refusal; the promotion is then logged as a
warning and recorded as forced. The newest recorded promotion names the live
policy (`current_live_policy`), which the composition root reads at start-up.

The table belongs to this module (`ml_policy_promotion`); its few queries
live here next to the only use case that writes it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.errors import Conflict, InvalidInput
from tipwise.kernel.logging import get_logger
from tipwise.ml.pipelines.models import PolicyPromotionRow
from tipwise.ml.pipelines.report import EvaluationReport

log = get_logger(__name__)

ESTIMATORS = ("dr", "snips", "ips")
# An interval computed from a handful of effective samples cannot be trusted, however narrow it looks.
MIN_EFFECTIVE_FRACTION = 0.1
NOTE_LENGTH = 500


class PromotionRefused(Conflict):
    code = "promotion_refused"


class InvalidPromotion(InvalidInput):
    code = "invalid_promotion"


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """The comparison a promotion is decided on."""

    candidate: str
    live: str
    estimator: str
    candidate_lower: float
    live_estimate: float
    n: int
    effective_sample_size: float = float("inf")

    @property
    def enough_evidence(self) -> bool:
        """Whether the candidate's estimate rests on enough effective samples to be trusted."""
        return self.effective_sample_size >= MIN_EFFECTIVE_FRACTION * self.n

    @property
    def passed(self) -> bool:
        return self.enough_evidence and self.candidate_lower > self.live_estimate

    def explain(self) -> str:
        if not self.enough_evidence:
            return (
                f"{self.candidate}'s estimate rests on an effective sample of {self.effective_sample_size:.1f} "
                f"of {self.n} decisions (under {MIN_EFFECTIVE_FRACTION:.0%}): the log says too little about it"
            )
        verb = "beats" if self.passed else "does not beat"
        return (
            f"{self.candidate}'s {self.estimator.upper()} lower bound {self.candidate_lower:.4f} {verb} "
            f"{self.live}'s estimate {self.live_estimate:.4f} (on {self.n} decisions)"
        )


@dataclass(frozen=True, kw_only=True)
class Promotion:
    """One recorded promotion."""

    id: int
    policy: str
    promoted_at: datetime
    forced: bool
    estimator: str
    candidate_lower: float | None
    live_estimate: float | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "promoted_at": self.promoted_at.isoformat(),
            "forced": self.forced,
            "estimator": self.estimator,
            "candidate_lower": self.candidate_lower,
            "live_estimate": self.live_estimate,
            "note": self.note,
        }


def gate(report: EvaluationReport, *, candidate: str, estimator: str = "dr") -> GateResult:
    """Compare the candidate's lower confidence bound with the live policy's estimate; raises InvalidPromotion."""
    if estimator not in ESTIMATORS:
        raise InvalidPromotion(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if candidate == report.live:
        raise InvalidPromotion(f"{candidate!r} is already the live policy")
    try:
        evaluated = report.policy(candidate)
    except KeyError:
        known = ", ".join(e.policy for e in report.policies)
        raise InvalidPromotion(f"policy {candidate!r} was not evaluated; evaluated: {known}") from None
    if estimator not in evaluated.estimates:
        raise InvalidPromotion(f"the report has no {estimator.upper()} estimates")
    return GateResult(
        candidate=candidate,
        live=report.live,
        estimator=estimator,
        candidate_lower=evaluated.estimate(estimator).lower,
        live_estimate=report.policy(report.live).estimate(estimator).value,
        n=report.n,
        effective_sample_size=evaluated.estimate(estimator).effective_sample_size,
    )


def promote(
    db: Database,
    *,
    candidate: str,
    report: EvaluationReport | None,
    now: datetime,
    estimator: str = "dr",
    force: bool = False,
    note: str | None = None,
    configured: Collection[str] | None = None,
) -> Promotion:
    """Record `candidate` as the live policy if it passes the gate, or anyway with `force`.

    Raises PromotionRefused when it does not pass (nothing is recorded), and
    InvalidPromotion for an unknown candidate or estimator. Without a report
    (no evaluable log) only a forced promotion goes through. With `configured`,
    the candidate must be one of those policies, so start-up can serve it.
    """
    if configured is not None and candidate not in configured:
        raise InvalidPromotion(f"policy {candidate!r} is not configured; configured: {', '.join(configured)}")
    if note is not None and len(note) > NOTE_LENGTH:
        raise InvalidPromotion(f"the note is longer than {NOTE_LENGTH} characters")
    if estimator not in ESTIMATORS:
        raise InvalidPromotion(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    result = gate(report, candidate=candidate, estimator=estimator) if report is not None else None
    passed = result is not None and result.passed
    if not passed and not force:
        reason = result.explain() if result is not None else "there is no evaluation to decide on"
        raise PromotionRefused(f"promotion of {candidate!r} refused: {reason}; use --force to override")
    if not passed:
        log.warning(
            "policy_promotion_forced",
            policy=candidate,
            estimator=estimator,
            reason=result.explain() if result is not None else "no evaluation",
        )
    with db.write() as session:
        promotion = record_promotion(
            session,
            policy=candidate,
            promoted_at=now,
            forced=not passed,
            estimator=estimator,
            candidate_lower=result.candidate_lower if result is not None else None,
            live_estimate=result.live_estimate if result is not None else None,
            note=note,
        )
    log.info("policy_promoted", policy=candidate, forced=promotion.forced, estimator=estimator, id=promotion.id)
    return promotion


def current_live_policy(db: Database) -> str | None:
    """Return the policy named by the newest promotion, or None if none was ever promoted."""
    with db.read() as session:
        return latest_promoted_policy(session)


def promotion_history(db: Database) -> list[Promotion]:
    """Return every recorded promotion, newest first."""
    with db.read() as session:
        return promotions(session)


# -- repository ------------------------------------------------------------------------------------------------------


def record_promotion(
    session: WriteSession,
    *,
    policy: str,
    promoted_at: datetime,
    forced: bool,
    estimator: str,
    candidate_lower: float | None,
    live_estimate: float | None,
    note: str | None,
) -> Promotion:
    """Add a promotion row; the caller commits."""
    row = PolicyPromotionRow(
        policy=policy,
        promoted_at=promoted_at,
        forced=forced,
        estimator=estimator,
        candidate_lower=candidate_lower,
        live_estimate=live_estimate,
        note=note,
    )
    session.add(row)
    session.flush()
    return _promotion(row)


def latest_promoted_policy(session: Session) -> str | None:
    query = select(PolicyPromotionRow.policy).order_by(PolicyPromotionRow.id.desc()).limit(1)
    return session.scalars(query).first()


def promotions(session: Session) -> list[Promotion]:
    rows = session.scalars(select(PolicyPromotionRow).order_by(PolicyPromotionRow.id.desc()))
    return [_promotion(row) for row in rows]


def _promotion(row: PolicyPromotionRow) -> Promotion:
    return Promotion(
        id=row.id,
        policy=row.policy,
        promoted_at=row.promoted_at,
        forced=row.forced,
        estimator=row.estimator,
        candidate_lower=row.candidate_lower,
        live_estimate=row.live_estimate,
        note=row.note,
    )
