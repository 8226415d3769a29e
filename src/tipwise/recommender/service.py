"""Use cases of the recommender: decide, take feedback, list history."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection

from tipwise import events
from tipwise.advice import AdviceFacade, Tip
from tipwise.kernel.db import ReadSession, WriteSession
from tipwise.kernel.errors import Conflict, InvalidInput, NotFound
from tipwise.kernel.ids import new_id
from tipwise.ml.serving import RankedDecision, Scorer
from tipwise.profile import Preferences, Purpose
from tipwise.recommender import repository
from tipwise.recommender.contracts import (
    FeedbackOut,
    FeedbackReaction,
    FeedbackRequest,
    HistoryItem,
    HistoryPage,
    LoggedDecision,
    NextTipOut,
    ShadowChoice,
    TipDecided,
    TipOut,
)
from tipwise.recommender.domain.candidates import CandidateRules, PastShow, blocked_tips, eligible_tips
from tipwise.recommender.domain.features import FEATURE_SPEC, SEND_NOTHING, Context, FeatureAssembler
from tipwise.recommender.domain.reactions import Reaction
from tipwise.recommender.models import FeedbackRow, TipInstanceRow


@dataclass(frozen=True, kw_only=True)
class DecisionService:
    advice: AdviceFacade
    scorer: Scorer
    rules: CandidateRules
    history_window: timedelta
    assembler: FeatureAssembler

    def plan(
        self,
        session: ReadSession | WriteSession | Connection | None = None,
        *,
        prefs: Preferences,
        purposes: frozenset[Purpose],
        now: datetime,
        seed: int,
        explore: bool,
        allow_nothing: bool = False,
        busy: Sequence[tuple[datetime, datetime]] | None = None,
        history: Sequence[PastShow] | None = None,
    ) -> Plan | None:
        """Choose a tip for the person (candidates, features, policy); None if nothing fits. Writes nothing.

        `purposes` are the consents in force: features needing another purpose
        are left out. Without personalization the same population model decides
        on context and tip features alone (what anyone would get at this local
        time): a non-personalized policy. The history is still read, but only
        for the rules the person set or the service needs (recently shown,
        not-for-me), never as features. `busy` holds the busy intervals of the
        person's calendar, read only when `purposes` allow calendar signals.

        `history` is the person's past shows (see `history_since`); without it they are read
        through `session`.
        """
        local_now = now.astimezone(prefs.zone)
        if history is None:
            if session is None:
                raise ValueError("plan needs the person's history or a session to read it")
            history = self.history_since(session, user_id=prefs.user_id, now=now)
        tips = eligible_tips(
            self.advice.active(),
            history=history,
            muted=prefs.muted_categories,
            local_now=local_now,
            now=now,
            rules=self.rules,
        )
        if not tips:
            return None
        context = self.assembler.assemble(
            local_now=local_now,
            history=history,
            tips=tips,
            purposes=purposes,
            allow_nothing=allow_nothing,
            busy=busy,
        )
        ids = list(context.actions)
        candidates = list(context.actions.values()) if context.candidates is None else context.candidates
        ranked = self.scorer.decide(context=context.shared, candidates=candidates, seed=seed, explore=explore)
        chosen_id = ids[ranked.live.decision.index]
        chosen = None if chosen_id == SEND_NOTHING else tips[ranked.live.decision.index]
        return Plan(user_id=prefs.user_id, now=now, seed=seed, context=context, ids=ids, ranked=ranked, chosen=chosen)

    def history_since(
        self, session: ReadSession | WriteSession | Connection, *, user_id: UUID, now: datetime
    ) -> list[PastShow]:
        """Read what the person was shown within the history window, plus every tip they marked not-for-me."""
        return repository.history_since(session, user_id=user_id, since=now - self.history_window)

    def in_window(self, history: Iterable[PastShow], *, now: datetime) -> list[PastShow]:
        """Return the shows of `history` that `history_since` would read at `now`."""
        since = now - self.history_window
        return [show for show in history if show.decided_at >= since or show.reaction is Reaction.NOT_FOR_ME]

    def still_eligible(self, session: WriteSession, plan: Plan) -> bool:
        """Return whether the planned tip is still allowed now that the write lock is held.

        Between planning (read transaction) and recording, a concurrent
        decision may have shown the same tip, or the person may have marked
        it not-for-me; both would be broken by recording the plan.
        """
        if plan.chosen is None:
            return True
        shows = repository.shows_of(session, user_id=plan.user_id, tip_id=plan.chosen.id)
        return plan.chosen.id not in blocked_tips(shows, now=plan.now, rules=self.rules)

    def record(self, session: WriteSession, plan: Plan) -> NextTipOut:
        """Persist a planned decision as a `TipInstance` and its `tip.decided` event, in the caller's transaction."""
        live, context, ids, now = plan.ranked.live, plan.context, plan.ids, plan.now
        chosen_id = plan.chosen.id if plan.chosen else SEND_NOTHING
        instance_id = new_id()
        repository.add_instance(
            session,
            dict(
                id=instance_id,
                user_id=plan.user_id,
                tip_id=chosen_id,
                category=plan.chosen.category.value if plan.chosen else NO_CATEGORY,
                decided_at=now,
                policy=live.policy,
                policy_version=live.policy_version,
                model_version=live.model_version,
                feature_spec=FEATURE_SPEC.name,
                context_snapshot=context.snapshot(),
                propensity=live.decision.propensity,
                probabilities=dict(zip(ids, live.decision.probabilities, strict=True)),
                shadows=[
                    {
                        "policy": shadow.policy,
                        "model_version": shadow.model_version,
                        "action": ids[shadow.decision.index],
                        "propensity": shadow.decision.propensity,
                        "probabilities": dict(zip(ids, shadow.decision.probabilities, strict=True)),
                    }
                    for shadow in plan.ranked.shadows
                ],
                confidence=live.decision.confidence,
                explored=live.decision.explored,
                seed=plan.seed,
            ),
        )
        payload = TipDecided(
            tip_instance_id=instance_id,
            user_id=plan.user_id,
            tip_id=chosen_id,
            policy=live.policy,
            model_version=live.model_version,
            feature_spec=FEATURE_SPEC.name,
            shared=context.shared,
            action=context.actions[chosen_id],
            propensity=live.decision.propensity,
            decided_at=now,
            personalized=context.personalized,
            model_training=Purpose.MODEL_TRAINING in context.purposes,
        )
        events.publish(
            session,
            events.Event.create(
                type=events.TIP_DECIDED, subject=str(plan.user_id), time=now, message=payload.to_message()
            ),
        )
        return NextTipOut(
            tip_instance_id=instance_id,
            tip=TipOut.of(plan.chosen) if plan.chosen else None,
            send_nothing=plan.chosen is None,
            policy=live.policy,
            model_version=live.model_version,
            propensity=live.decision.propensity,
            confidence=live.decision.confidence,
            explored=live.decision.explored,
            personalized=context.personalized,
            decided_at=now,
        )


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A decision made but not yet recorded."""

    user_id: UUID
    now: datetime
    seed: int
    context: Context
    ids: list[str]
    ranked: RankedDecision
    chosen: Tip | None


class HistoryCache:
    """Each person's recent shows, kept in memory between their decisions.

    Reading the history is the largest read of a decision, and only decisions and reactions
    change it. This process's own changes apply at once: a recorded decision is appended
    (`shown`), a reaction drops the person's entry (`forget`). A change made by another
    process is seen once the entry expires (`seconds`, as for preferences); until then the
    write-lock re-check (`DecisionService.still_eligible`) still keeps the chosen tip within
    the rules, so what goes stale is only how the other tips and the person's features look.
    Entries hold no consent: consents are read afresh for every decision.
    """

    def __init__(self, *, seconds: float, size: int = 100_000) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: dict[UUID, tuple[float, list[PastShow]]] = {}
        # Bumped by every change: a read that began before a change must not cache what it read.
        # The epoch moves when the counts are cleared, so no read can match a cleared count.
        self._generation: dict[UUID, int] = {}
        self._epoch = 0
        self._lock = threading.Lock()
        self._sweep_due = time.monotonic() + seconds

    def get(self, user_id: UUID) -> list[PastShow] | None:
        """Return a copy of the person's cached shows, None when there is no live entry."""
        entry = self._entries.get(user_id)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return list(entry[1])

    def generation(self, user_id: UUID) -> tuple[int, int]:
        """Return the person's change count: pass it to `put` with what was read after asking."""
        return self._epoch, self._generation.get(user_id, 0)

    def put(self, user_id: UUID, shows: Sequence[PastShow], *, generation: tuple[int, int]) -> None:
        """Remember shows read from the database, unless a change raced with the read."""
        if self._seconds <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if (self._epoch, self._generation.get(user_id, 0)) != generation:
                return  # changed while we read: the next decision reads again
            if now >= self._sweep_due:
                # Expired entries go, so an erased person's history does not linger in memory.
                for expired in [u for u, (expires, _) in self._entries.items() if expires <= now]:
                    del self._entries[expired]
                self._sweep_due = now + self._seconds
            if len(self._entries) >= self._size:
                self._clear()
            self._entries[user_id] = (now + self._seconds, list(shows))

    def shown(self, user_id: UUID, show: PastShow) -> None:
        """Add a show this process just committed to the person's entry, if they have one."""
        with self._lock:
            self._changed(user_id)
            entry = self._entries.get(user_id)
            # A read that raced with the commit may have cached this show already. Only a show of the
            # same instant can be it: comparing those times first spares a field-by-field comparison
            # with every show in the window (this runs after every decision).
            if entry is not None and not any(
                cached.decided_at == show.decided_at and cached == show for cached in entry[1]
            ):
                entry[1].append(show)

    def forget(self, user_id: UUID) -> None:
        """Drop the person's entry (after a change that is simpler to read again than to apply)."""
        with self._lock:
            self._changed(user_id)
            self._entries.pop(user_id, None)

    def _changed(self, user_id: UUID) -> None:
        if len(self._generation) >= self._size:
            self._clear()
        self._generation[user_id] = self._generation.get(user_id, 0) + 1

    def _clear(self) -> None:
        self._entries.clear()
        self._generation.clear()
        self._epoch += 1


# What a "send nothing" decision stores as its category.
NO_CATEGORY = "none"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class NothingWasSent(Conflict):
    code = "nothing_was_sent"


class ReactionAlreadyRecorded(Conflict):
    code = "reaction_already_recorded"


def record_feedback(
    session: WriteSession, *, user_id: UUID, request: FeedbackRequest, now: datetime, learnable: bool = True
) -> FeedbackOut:
    """Record a reaction once; repeats with the same key return the first result unchanged.

    `learnable` says whether the person grants, now, that the reaction be learned from.
    """
    previous = repository.feedback_by_key(session, user_id=user_id, idempotency_key=request.idempotency_key)
    if previous is not None:
        if previous.tip_instance_id != request.tip_instance_id or previous.reaction != request.reaction.value:
            raise IdempotencyKeyReused("this idempotency_key was already used for a different reaction")
        return _feedback_out(previous)
    instance = repository.instance_of(session, user_id=user_id, tip_instance_id=request.tip_instance_id)
    if instance is None:
        raise NotFound(f"no tip instance {request.tip_instance_id} for this account")
    if instance.tip_id == SEND_NOTHING:
        raise NothingWasSent("this decision was to send nothing; there is no tip to react to")
    if instance.reaction is not None:
        existing = repository.feedback_for(session, tip_instance_id=instance.id)
        if instance.reaction == request.reaction.value and existing is not None:
            return _feedback_out(existing)
        raise ReactionAlreadyRecorded(f"this tip already has the reaction {instance.reaction!r}")
    row = FeedbackRow(
        id=new_id(),
        user_id=user_id,
        tip_instance_id=instance.id,
        reaction=request.reaction.value,
        idempotency_key=request.idempotency_key,
        created_at=now,
    )
    repository.add_feedback(session, row)
    instance.reaction = request.reaction.value
    instance.reacted_at = now
    payload = FeedbackReaction(
        tip_instance_id=instance.id, user_id=user_id, reaction=request.reaction, reacted_at=now, learnable=learnable
    )
    events.publish(
        session,
        events.Event.create(
            type=events.FEEDBACK_REACTION, subject=str(user_id), time=now, message=payload.to_message()
        ),
    )
    return _feedback_out(row)


def _feedback_out(row: FeedbackRow) -> FeedbackOut:
    return FeedbackOut(
        tip_instance_id=row.tip_instance_id,
        reaction=Reaction(row.reaction),
        idempotency_key=row.idempotency_key,
        recorded_at=row.created_at,
    )


def history(
    session: ReadSession, *, user_id: UUID, advice: AdviceFacade, limit: int, cursor: str | None
) -> HistoryPage:
    """Return one page of the person's tips, newest first."""
    before = decode_cursor(cursor) if cursor else None
    rows = repository.history_page(session, user_id=user_id, limit=limit + 1, before=before)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        HistoryItem(
            tip_instance_id=row.id,
            tip=TipOut.of(_tip_of(advice, row)),
            decided_at=row.decided_at,
            reaction=Reaction(row.reaction) if row.reaction else None,
            reacted_at=row.reacted_at,
        )
        for row in rows
    ]
    next_cursor = encode_cursor(rows[-1].decided_at, rows[-1].id) if more and rows else None
    return HistoryPage(items=items, next_cursor=next_cursor)


def logged_decisions(session: ReadSession, *, since: datetime | None, until: datetime | None) -> list[LoggedDecision]:
    """Return every logged decision in [since, until), oldest first, with its reaction if any."""
    return [
        LoggedDecision(
            tip_instance_id=row.id,
            user_id=row.user_id,
            decided_at=row.decided_at,
            policy=row.policy,
            model_version=row.model_version,
            feature_spec=row.feature_spec,
            shared=row.context_snapshot["shared"],
            actions=row.context_snapshot["actions"],
            action=row.tip_id,
            propensity=row.propensity,
            probabilities=row.probabilities,
            shadows=tuple(
                ShadowChoice(
                    policy=shadow["policy"],
                    model_version=shadow["model_version"],
                    action=shadow["action"],
                    probabilities=shadow["probabilities"],
                )
                for shadow in row.shadows
            ),
            explored=row.explored,
            reaction=Reaction(row.reaction) if row.reaction else None,
            reacted_at=row.reacted_at,
            model_training=Purpose.MODEL_TRAINING.value in row.context_snapshot.get("purposes", _BEFORE_CONSENTS),
        )
        for row in repository.decisions_between(session, since=since, until=until)
    ]


# What a snapshot stored before consents existed is read as (they were all learned from).
_BEFORE_CONSENTS = [Purpose.MODEL_TRAINING.value]


def _tip_of(advice: AdviceFacade, row: TipInstanceRow) -> Tip:
    tip = advice.get(row.tip_id)
    if tip is None:
        raise NotFound(f"tip {row.tip_id!r} is missing from the advice catalogue")
    return tip


def encode_cursor(at: datetime, instance_id: UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{instance_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, instance_id = raw.split("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive time in cursor")
        return moment, UUID(instance_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", extra={"field": "cursor"}
        ) from exc
