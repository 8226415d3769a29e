"""The recommender as the gateway and other modules see it."""

from __future__ import annotations

import asyncio
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.exc import DBAPIError, IntegrityError

from tipwise.advice import AdviceFacade
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics
from tipwise.ml.serving import Scorer
from tipwise.profile import Preferences, ProfileFacade, Purpose
from tipwise.recommender import service
from tipwise.recommender.contracts import FeedbackOut, FeedbackRequest, HistoryPage, LoggedDecision, NextTipOut
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.domain.features import FeatureAssembler
from tipwise.recommender.settings import RecommenderSettings

log = get_logger(__name__)

SEED_BITS = 63
# What a person must grant for the learner to learn from their reactions.
LEARNING_PURPOSES = frozenset({Purpose.PERSONALIZATION, Purpose.MODEL_TRAINING})
# The most decisions one group commit records in one transaction.
MAX_GROUP = 64


def random_seed() -> int:
    return secrets.randbits(SEED_BITS)


@dataclass(frozen=True, kw_only=True)
class _Pending:
    """A planned decision waiting to be recorded, with what a re-plan under the write lock needs."""

    plan: service.Plan
    prefs: Preferences
    purposes: frozenset[Purpose]
    explore: bool
    allow_nothing: bool


@dataclass(frozen=True, kw_only=True)
class _Recorded:
    user_id: UUID
    decision: NextTipOut | None
    show: PastShow | None
    replanned: bool


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
    ) -> None:
        self._db = db
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
        self._history = service.HistoryCache(seconds=settings.history_cache_seconds)
        self._group = _GroupCommit(record=self._record_group)

    def next_tip(self, *, user_id: UUID, explore: bool = True, allow_nothing: bool = False) -> NextTipOut | None:
        """Decide the tip to show now; None when no tip is eligible.

        With `allow_nothing` the policy may also choose to send nothing: the
        answer then has no tip, and the choice is logged and learned like any other.
        """
        pending = self._plan(user_id=user_id, explore=explore, allow_nothing=allow_nothing)
        if pending is None:
            return None
        with self._db.write() as session:
            recorded = self._record(session, pending)
        return self._committed([recorded])[0]

    async def next_tip_async(
        self, *, user_id: UUID, explore: bool = True, allow_nothing: bool = False
    ) -> NextTipOut | None:
        """`next_tip` for the event loop: plan here, record in a group commit, answer once it is committed.

        Many concurrent decisions share one write transaction (a group commit) instead of
        queueing for the database's write lock one by one; each caller still gets its
        answer only after the transaction holding its decision has committed.
        """
        if self._db.is_sqlite:
            # Reads of a local SQLite file take microseconds: a thread hop would cost more.
            pending = self._plan(user_id=user_id, explore=explore, allow_nothing=allow_nothing)
        else:
            pending = await asyncio.to_thread(self._plan, user_id=user_id, explore=explore, allow_nothing=allow_nothing)
        if pending is None:
            return None
        return await asyncio.wrap_future(self._group.submit(pending))

    def close(self) -> None:
        """Stop the group-commit thread once the decisions handed to it are recorded."""
        self._group.close()

    def _plan(self, *, user_id: UUID, explore: bool, allow_nothing: bool) -> _Pending | None:
        prefs = self._profile.preferences(user_id=user_id)
        # Never cached: a withdrawal takes effect at the very next decision.
        purposes = self._profile.granted(user_id=user_id)
        now = self._clock.now()
        history = self._history.get(user_id)
        if history is None:
            generation = self._history.generation(user_id)
            with self._db.read_connection() as connection:
                history = self._decisions.history_since(connection, user_id=user_id, now=now)
            self._history.put(user_id, history, generation=generation)
        else:
            history = self._decisions.in_window(history, now=now)
        plan = self._decisions.plan(
            prefs=prefs,
            purposes=purposes,
            now=now,
            seed=self._seeds(),
            explore=explore,
            allow_nothing=allow_nothing,
            history=history,
        )
        if plan is None:
            self._metrics.empty_decisions.inc()
            return None
        return _Pending(plan=plan, prefs=prefs, purposes=purposes, explore=explore, allow_nothing=allow_nothing)

    def _record(self, session: WriteSession, pending: _Pending) -> _Recorded:
        """Record a plan in the caller's write transaction, planning afresh if it was overtaken."""
        plan: service.Plan | None = pending.plan
        replanned = False
        if plan is not None and not self._decisions.still_eligible(session, plan):
            # Rare: a concurrent decision or reaction got there first; plan again under the lock.
            replanned = True
            plan = self._decisions.plan(
                session,
                prefs=pending.prefs,
                purposes=pending.purposes,
                now=plan.now,
                seed=plan.seed,
                explore=pending.explore,
                allow_nothing=pending.allow_nothing,
            )
        if plan is None:
            return _Recorded(user_id=pending.plan.user_id, decision=None, show=None, replanned=replanned)
        decision = self._decisions.record(session, plan)
        show = (
            PastShow(tip_id=plan.chosen.id, category=plan.chosen.category, decided_at=plan.now)
            if plan.chosen is not None
            else None
        )
        return _Recorded(user_id=pending.plan.user_id, decision=decision, show=show, replanned=replanned)

    def _record_group(self, group: list[_Pending]) -> list[NextTipOut | None]:
        with self._db.write() as session:
            recorded = [self._record(session, pending) for pending in group]
        return self._committed(recorded)

    def _committed(self, recorded: list[_Recorded]) -> list[NextTipOut | None]:
        """Bring the history cache and the metrics up to date with decisions just committed."""
        for item in recorded:
            decision = item.decision
            if decision is None:
                self._metrics.empty_decisions.inc()
                continue
            user_id = item.user_id
            if item.replanned or item.show is None:
                self._history.forget(user_id)
            else:
                self._history.shown(user_id, item.show)
            self._metrics.decisions.labels(policy=decision.policy).inc()
        if any(item.decision is not None for item in recorded):
            self._on_commit()
        return [item.decision for item in recorded]

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
        self._history.forget(user_id)
        self._on_commit()
        return result

    def logged_decisions(self, *, since: datetime | None = None, until: datetime | None = None) -> list[LoggedDecision]:
        """Return the decision log in [since, until), oldest first (for evaluation and replay)."""
        with self._db.read() as session:
            return service.logged_decisions(session, since=since, until=until)

    def history(self, *, user_id: UUID, limit: int = 20, cursor: str | None = None) -> HistoryPage:
        with self._db.read() as session:
            return service.history(session, user_id=user_id, advice=self._advice, limit=limit, cursor=cursor)


class _GroupCommit:
    """A thread that records queued decisions, all those waiting (up to `MAX_GROUP`) in one transaction.

    Each caller's future resolves only after the transaction holding its decision has
    committed, so an answer never names a decision that a crash could lose. When a group
    fails for another reason than the database, each of its decisions is tried again in a
    transaction of its own, so one bad decision cannot fail the others.
    """

    def __init__(self, *, record: Callable[[list[_Pending]], list[NextTipOut | None]]) -> None:
        self._record = record
        self._queue: queue.SimpleQueue[tuple[_Pending, Future[NextTipOut | None]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, pending: _Pending) -> Future[NextTipOut | None]:
        future: Future[NextTipOut | None] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tipwise-decisions", daemon=True)
                self._thread.start()
            self._queue.put((pending, future))
        return future

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            # A caller that gave up before its decision was taken up gets no decision recorded.
            self._commit([(p, f) for p, f in group if f.set_running_or_notify_cancel()])

    def _commit(self, group: list[tuple[_Pending, Future[NextTipOut | None]]]) -> None:
        if not group:
            return
        try:
            decisions = self._record([pending for pending, _ in group])
        except Exception as exc:
            if len(group) == 1 or isinstance(exc, DBAPIError):
                for _, future in group:
                    future.set_exception(exc)
                return
            log.warning("decision_group_failed", size=len(group), error=type(exc).__name__)
            for item in group:
                self._commit([item])
            return
        for (_, future), decision in zip(group, decisions, strict=True):
            future.set_result(decision)
