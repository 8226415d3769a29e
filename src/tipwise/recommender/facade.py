"""The recommender as the gateway and other modules see it."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from tipwise.advice import AdviceFacade
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriterBusy, WriteSession
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
# How soon a group commit tries again when another writer of this process holds the lock.
BUSY_RETRY_SECONDS = 0.002
# After finding the lock taken for this long, a group waits for it in a thread instead: a writer
# with a backlog (the relay, the learner) takes the lock back to back, and a poll every 2 ms would
# almost never find it free.
BUSY_WAIT_SECONDS = 0.025


# How far around the decision the calendar's busy intervals are read (the features look 4 hours ahead).
CALENDAR_WINDOW = timedelta(hours=6)


class CalendarPort(Protocol):
    """Busy times of a person's connected calendar (the integrations module)."""

    def busy_intervals(
        self, *, user_id: UUID, start: datetime, end: datetime, connection: Connection | None = None
    ) -> Sequence[tuple[datetime, datetime]] | None: ...


class AccountPort(Protocol):
    """Whether a person's account still exists, held so for the caller's write transaction (auth)."""

    def hold_account(self, session: WriteSession, *, user_id: UUID) -> bool: ...


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
    busy: Sequence[tuple[datetime, datetime]] | None


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
        accounts: AccountPort,
        on_commit: Callable[[], None] = lambda: None,
        seeds: Callable[[], int] = random_seed,
        calendar: CalendarPort | None = None,
    ) -> None:
        self._db = db
        self._accounts = accounts
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
        self._history = service.HistoryCache(seconds=settings.history_cache_seconds)
        self._known = _KnownConsents(seconds=settings.history_cache_seconds)
        # One group commit per event loop: a loop's futures must only be touched from that loop.
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupCommit] = weakref.WeakKeyDictionary()

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
        """`next_tip` for the event loop; on SQLite, decisions made together share one transaction.

        On SQLite the loop plans and records itself: the database is a local file, and a thread
        per request spends more on handing the GIL and the single write lock around than on the
        work (measured in `tipwise bench http`). Each decision is queued for a group commit that
        runs once the loop has taken up every request already waiting, so many decisions share
        one write transaction; each caller is answered only after that transaction committed.
        Other databases take concurrent writers: there each decision runs in a thread.
        """
        if not self._db.is_sqlite:
            return await asyncio.to_thread(self.next_tip, user_id=user_id, explore=explore, allow_nothing=allow_nothing)
        pending = self._plan(user_id=user_id, explore=explore, allow_nothing=allow_nothing)
        if pending is None:
            return None
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = _GroupCommit(record=self._record_group)
        return await group.submit(pending)

    def _plan(self, *, user_id: UUID, explore: bool, allow_nothing: bool) -> _Pending | None:
        # The consents are never trusted from memory: a withdrawal takes effect at the very next
        # decision. `_record` reads them again in the transaction that records the decision, so
        # the plan may be made on the ones last read (one read transaction fewer per decision).
        # The calendar needs them read first: without the consent to calendar signals it is not
        # even read.
        now = self._clock.now()
        known = self._known.get(user_id)
        busy = None
        if known is None or (self._calendar is not None and Purpose.CALENDAR_SIGNALS in known):
            # One read transaction for the consents and, when they allow it, the calendar.
            with self._db.read_connection() as connection:
                prefs, purposes = self._profile.for_decision(user_id=user_id, connection=connection)
                busy = self._busy(user_id, purposes, now=now, connection=connection)
            self._known.put(user_id, purposes)
        else:
            prefs, purposes = self._profile.preferences(user_id=user_id), known
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
            busy=busy,
            history=history,
        )
        if plan is None:
            self._metrics.empty_decisions.inc()
            return None
        return _Pending(
            plan=plan,
            prefs=prefs,
            purposes=purposes,
            explore=explore,
            allow_nothing=allow_nothing,
            busy=busy,
        )

    def _busy(
        self, user_id: UUID, purposes: frozenset[Purpose], *, now: datetime, connection: Connection | None = None
    ) -> Sequence[tuple[datetime, datetime]] | None:
        # Purpose binding: the calendar is not even read without the consent to calendar signals.
        if self._calendar is None or Purpose.CALENDAR_SIGNALS not in purposes:
            return None
        return self._calendar.busy_intervals(
            user_id=user_id, start=now, end=now + CALENDAR_WINDOW, connection=connection
        )

    def _record(self, session: WriteSession, pending: _Pending) -> _Recorded:
        """Record a plan in the caller's write transaction, planning afresh if it was overtaken.

        Nothing is recorded for a person erased since the plan was made: the erasure deleted
        their rows and their data key, and a decision written after it would outlive it (with a
        new data key that opens its event). Held under the write lock, the account stays until
        this transaction ends. This is the single place where a plan is written: every check
        that needs the write lock is here.
        """
        plan: service.Plan | None = pending.plan
        user_id = pending.plan.user_id
        if not self._accounts.hold_account(session, user_id=user_id):
            log.info("decision_dropped_account_erased")
            self._known.forget(user_id)
            return _Recorded(user_id=user_id, decision=None, show=None, replanned=True)
        # The consents in force as this transaction records the decision: a withdrawal committed
        # since the plan was made (in any process) re-plans it without what it withdrew.
        purposes, busy = pending.purposes, pending.busy
        connection = session.connection()
        fresh = self._profile.granted(user_id=user_id, connection=connection)
        self._known.put(user_id, fresh)
        if fresh != purposes:
            purposes, busy = fresh, self._busy(user_id, fresh, now=pending.plan.now, connection=connection)
        if plan is not None and (purposes != pending.purposes or not self._decisions.still_eligible(session, plan)):
            # Rare: the consents changed, or a concurrent decision or reaction got there first;
            # plan again under the lock.
            replanned = True
            plan = self._decisions.plan(
                session,
                prefs=pending.prefs,
                purposes=purposes,
                now=plan.now,
                seed=plan.seed,
                explore=pending.explore,
                allow_nothing=pending.allow_nothing,
                busy=busy,
            )
        else:
            replanned = False
        if plan is None:
            return _Recorded(user_id=user_id, decision=None, show=None, replanned=replanned)
        decision = self._decisions.record(session, plan)
        show = (
            PastShow(tip_id=plan.chosen.id, category=plan.chosen.category, decided_at=plan.now)
            if plan.chosen is not None
            else None
        )
        return _Recorded(user_id=user_id, decision=decision, show=show, replanned=replanned)

    def _record_group(self, group: list[_Pending], *, wait: bool = True) -> list[NextTipOut | None]:
        with self._db.write(wait=wait) as session:
            recorded = [self._record(session, pending) for pending in group]
        # Committed: a failure of the bookkeeping must not make the caller record the group again.
        try:
            return self._committed(recorded)
        except Exception:
            log.exception("decision_bookkeeping_failed", size=len(recorded))
            for item in recorded:
                self._history.forget(item.user_id)
            return [item.decision for item in recorded]

    def _committed(self, recorded: list[_Recorded]) -> list[NextTipOut | None]:
        """Bring the history cache and the metrics up to date with decisions just committed."""
        for item in recorded:
            decision = item.decision
            user_id = item.user_id
            if decision is None:
                self._metrics.empty_decisions.inc()
                if item.replanned:
                    self._history.forget(user_id)
                continue
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


class _KnownConsents:
    """The consents this process last read for each person: what a decision is planned on.

    Only a guess to plan with: every decision is recorded only after the consents were read
    again in its write transaction (see `RecommenderFacade._record`). Entries expire after
    `seconds` (the history cache's), and expired ones are swept, so an erased person's choices
    do not linger in memory; bounded, cleared when full.
    """

    def __init__(self, *, seconds: float, size: int = 100_000) -> None:
        self._seconds = seconds
        self._size = size
        self._purposes: dict[UUID, tuple[float, frozenset[Purpose]]] = {}
        self._sweep_due = time.monotonic() + seconds
        self._lock = threading.Lock()

    def get(self, user_id: UUID) -> frozenset[Purpose] | None:
        entry = self._purposes.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, user_id: UUID, purposes: frozenset[Purpose]) -> None:
        if self._seconds <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if now >= self._sweep_due:
                for expired in [u for u, (expires, _) in self._purposes.items() if expires <= now]:
                    del self._purposes[expired]
                self._sweep_due = now + self._seconds
            if len(self._purposes) >= self._size and user_id not in self._purposes:
                self._purposes.clear()
            self._purposes[user_id] = (now + self._seconds, purposes)

    def forget(self, user_id: UUID) -> None:
        with self._lock:
            self._purposes.pop(user_id, None)


class _GroupCommit:
    """Records the decisions queued on one event loop, all those waiting (up to `MAX_GROUP`) in one transaction.

    A group runs as soon as the loop has run the callbacks already ready, that is once every
    request that was waiting has been planned and queued. A future resolves only after the
    transaction holding its decision committed, so an answer never names a decision that a
    crash could lose. When a group fails for another reason than the database, each of its
    decisions is tried again in a transaction of its own, so one bad decision cannot fail the others.
    """

    def __init__(self, *, record: Callable[..., list[NextTipOut | None]]) -> None:
        self._record = record
        self._queue: list[tuple[_Pending, asyncio.Future[NextTipOut | None]]] = []
        self._scheduled = False
        self._busy_since: float | None = None
        self._waiting: set[asyncio.Task[None]] = set()

    def submit(self, pending: _Pending) -> asyncio.Future[NextTipOut | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[NextTipOut | None] = loop.create_future()
        self._queue.append((pending, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        # A caller that went away (its request was cancelled) gets no decision recorded.
        self._queue = [(pending, future) for pending, future in self._queue if not future.done()]
        group = self._queue[:MAX_GROUP]
        try:
            self._commit(group, wait=False)
        except WriterBusy:
            # Another writer of this process (the relay, the learner) holds the lock: serve other
            # requests meanwhile, and try again shortly with what has queued up by then.
            now = loop.time()
            if self._busy_since is None:
                self._busy_since = now
            if now - self._busy_since < BUSY_WAIT_SECONDS:
                loop.call_later(BUSY_RETRY_SECONDS, self._flush)
                return
            # Still taken: this group waits for the lock in a thread, the loop keeps serving.
            self._spawn(self._commit_in_thread(group))
        self._busy_since = None
        self._queue = self._queue[len(group) :]
        if self._queue:
            loop.call_soon(self._flush)
        else:
            self._scheduled = False

    def _commit(self, group: list[tuple[_Pending, asyncio.Future[NextTipOut | None]]], *, wait: bool = True) -> None:
        if not group:
            return
        try:
            decisions = self._record([pending for pending, _ in group], wait=wait)
        except WriterBusy:
            raise
        except Exception as exc:
            self._failed(group, exc)
            return
        self._resolve(group, decisions)

    async def _commit_in_thread(self, group: list[tuple[_Pending, asyncio.Future[NextTipOut | None]]]) -> None:
        """Record `group` in a thread that waits for the write lock; answer its futures on the loop."""
        try:
            decisions = await asyncio.to_thread(self._record, [pending for pending, _ in group], wait=True)
        except Exception as exc:
            self._failed(group, exc)
            return
        self._resolve(group, decisions)

    def _failed(self, group: list[tuple[_Pending, asyncio.Future[NextTipOut | None]]], exc: Exception) -> None:
        """Answer a group that failed: with the error, or (a bad decision among good ones) each alone."""
        if len(group) == 1 or isinstance(exc, DBAPIError):
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        log.warning("decision_group_failed", size=len(group), error=type(exc).__name__)
        for item in group:
            # Each in a transaction of its own, waiting for the lock off the loop.
            self._spawn(self._commit_in_thread([item]))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._waiting.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._waiting.discard)

    @staticmethod
    def _resolve(
        group: list[tuple[_Pending, asyncio.Future[NextTipOut | None]]], decisions: list[NextTipOut | None]
    ) -> None:
        for (_, future), decision in zip(group, decisions, strict=True):
            if not future.done():
                future.set_result(decision)
