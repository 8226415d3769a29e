"""The recommender as the gateway and other modules see it."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from tipwise.advice import AdviceFacade
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.kernel.metrics import Metrics
from tipwise.ml.serving import Scorer
from tipwise.profile import ProfileFacade, Purpose
from tipwise.recommender import service
from tipwise.recommender.contracts import FeedbackOut, FeedbackRequest, HistoryPage, LoggedDecision, NextTipOut
from tipwise.recommender.domain.features import FeatureAssembler
from tipwise.recommender.settings import RecommenderSettings

SEED_BITS = 63
# What a person must grant for the learner to learn from their reactions.
LEARNING_PURPOSES = frozenset({Purpose.PERSONALIZATION, Purpose.MODEL_TRAINING})


# How far around the decision the calendar's busy intervals are read (the features look 4 hours ahead).
CALENDAR_WINDOW = timedelta(hours=6)


class CalendarPort(Protocol):
    """Busy times of a person's connected calendar (the integrations module)."""

    def busy_intervals(
        self, *, user_id: UUID, start: datetime, end: datetime
    ) -> Sequence[tuple[datetime, datetime]] | None: ...


def random_seed() -> int:
    return secrets.randbits(SEED_BITS)


class RecommenderFacade:
    """Decisions, feedback and history; each call is one unit of work."""

    def __init__(
        self,
        *,
        db: Database,
        advice: AdviceFacade,
        profile: ProfileFacade,
        scorer: Scorer,
        clock: Clock,
        metrics: Metrics,
        settings: RecommenderSettings,
        on_commit: Callable[[], None] = lambda: None,
        seeds: Callable[[], int] = random_seed,
        calendar: CalendarPort | None = None,
    ) -> None:
        self._db = db
        self._calendar = calendar
        self._advice = advice
        self._profile = profile
        self._clock = clock
        self._metrics = metrics
        self._on_commit = on_commit
        self._seeds = seeds
        self._decisions = service.DecisionService(
            advice=advice,
            scorer=scorer,
            rules=settings.rules(),
            history_window=timedelta(days=settings.history_days),
            assembler=FeatureAssembler(),
        )

    def next_tip(self, *, user_id: UUID, explore: bool = True, allow_nothing: bool = False) -> NextTipOut | None:
        """Decide the tip to show now; None when no tip is eligible.

        With `allow_nothing` the policy may also choose to send nothing: the
        answer then has no tip, and the choice is logged and learned like any other.
        """
        prefs = self._profile.preferences(user_id=user_id)
        purposes = self._profile.consents(user_id=user_id).granted
        now = self._clock.now()
        busy = None
        # Purpose binding: the calendar is not even read without the consent to calendar signals.
        if self._calendar is not None and Purpose.CALENDAR_SIGNALS in purposes:
            busy = self._calendar.busy_intervals(user_id=user_id, start=now, end=now + CALENDAR_WINDOW)
        # Decide in a read transaction; hold the write lock only to record the decision.
        with self._db.read() as session:
            plan = self._decisions.plan(
                session,
                prefs=prefs,
                purposes=purposes,
                now=now,
                seed=self._seeds(),
                explore=explore,
                allow_nothing=allow_nothing,
                busy=busy,
            )
        if plan is None:
            self._metrics.empty_decisions.inc()
            return None
        with self._db.write() as session:
            if not self._decisions.still_eligible(session, plan):
                # Rare: a concurrent decision or reaction got there first; plan again under the lock.
                plan = self._decisions.plan(
                    session,
                    prefs=prefs,
                    purposes=purposes,
                    now=plan.now,
                    seed=plan.seed,
                    explore=explore,
                    allow_nothing=allow_nothing,
                    busy=busy,
                )
            decision = self._decisions.record(session, plan) if plan is not None else None
        if decision is None:
            self._metrics.empty_decisions.inc()
            return None
        self._metrics.decisions.labels(policy=decision.policy).inc()
        self._on_commit()
        return decision

    def record_feedback(self, *, user_id: UUID, request: FeedbackRequest) -> FeedbackOut:
        """Record a reaction (idempotent by key); raises NotFound or Conflict."""
        learnable = LEARNING_PURPOSES <= self._profile.consents(user_id=user_id).granted
        try:
            with self._db.write() as session:
                result = service.record_feedback(
                    session, user_id=user_id, request=request, now=self._clock.now(), learnable=learnable
                )
        except IntegrityError:
            # A concurrent retry with the same key won the race: answer with its result.
            with self._db.write() as session:
                result = service.record_feedback(
                    session, user_id=user_id, request=request, now=self._clock.now(), learnable=learnable
                )
        self._on_commit()
        return result

    def logged_decisions(self, *, since: datetime | None = None, until: datetime | None = None) -> list[LoggedDecision]:
        """Return the decision log in [since, until), oldest first (for evaluation and replay)."""
        with self._db.read() as session:
            return service.logged_decisions(session, since=since, until=until)

    def history(self, *, user_id: UUID, limit: int = 20, cursor: str | None = None) -> HistoryPage:
        with self._db.read() as session:
            return service.history(session, user_id=user_id, advice=self._advice, limit=limit, cursor=cursor)
