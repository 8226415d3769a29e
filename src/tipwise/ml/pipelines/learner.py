"""The online learner: joins decisions with reactions, turns them into rewards, updates every policy.

It consumes the event log in order:

- `tip.decided`: remember what was shown, in which context, with what probability;
- `feedback.reaction`: look the decision up and learn the reaction's reward;
- `reward.defaulted`: the learner's own verdict that a decision got no reaction
  within the reward wait; learn the default reward.

Consent: a decision made without the personalization or the model-training
consent (`TipDecided.learnable` false) is never remembered, so nothing is
learned from it; a reaction recorded after such a withdrawal
(`FeedbackReaction.learnable` false) drops its pending decision unlearned.

Erasure: when a person is erased their data key is destroyed (their events on
the log become unreadable) before `user.deleted` is published. Applying
`user.deleted`, the learner rebuilds every model by replaying the events it has
applied, which now skips the erased person's, and swaps the rebuilt models in
(stored, published to serving, snapshotted).

`expire` only *publishes* `reward.defaulted`; the reward is applied when that
event comes off the log. So everything learned is a pure function of the log
order, and `replay` rebuilds the same models bit for bit. A reaction that comes
after its decision was defaulted is counted as late and not learned twice.

The learned state of every policy is written in the same transaction as the
tracking rows of the events it reflects, so a crash never applies an event
twice or loses one; after each commit the new models are published to the
serving registry (the next decision uses them) and, every N rewards or T
seconds, as a snapshot to the model registry.
"""

from __future__ import annotations

import io
import itertools
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from tipwise import events
from tipwise.kernel.blas import BlasThreads
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics
from tipwise.ml.pipelines import repository
from tipwise.ml.pipelines.models import ModelRow
from tipwise.ml.pipelines.rewards import RewardMap
from tipwise.ml.serving import (
    FeatureSpec,
    LoggedReward,
    ModelRegistry,
    ModelSnapshot,
    Policy,
    PolicyRegistry,
    PolicySpec,
    build_policy,
    copy_policy,
    learn_together,
    state_is_converted,
)
from tipwise.recommender import Reaction

log = get_logger(__name__)

EXPIRE_BATCH = 1000
LEARNED_EVENT_TYPES = frozenset({events.TIP_DECIDED, events.FEEDBACK_REACTION, events.REWARD_DEFAULTED})
# The events this learner has applied, in the order it applied them, readable ones only.
History = Callable[[WriteSession], Iterable[events.Event]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """A decision waiting for its reward.

    `decided_at` and `user_id` are only needed when the decision is stored to wait beyond its
    batch; a decision decoded from the log keeps its message and subject, and reads them from
    there only then (most decisions are rewarded within the batch that decided them).
    """

    tip_instance_id: UUID
    shared: dict[str, float]
    action: dict[str, float]
    propensity: float
    stored_decided_at: datetime | None = None
    message: events.messages.TipDecided | None = None
    subject: str = ""

    @property
    def decided_at(self) -> datetime:
        if self.message is not None:
            return events.from_timestamp(self.message.decided_at)
        if self.stored_decided_at is None:  # pragma: no cover - every Pending has one or the other
            raise ValueError("a pending decision without its decision time")
        return self.stored_decided_at

    @property
    def user_id(self) -> UUID | None:
        return _person(self.subject) if self.subject else None


@dataclass(kw_only=True)
class Outcome:
    """What one run of the join produced."""

    examples: list[LoggedReward] = field(default_factory=list)
    reactions: int = 0
    timeouts: int = 0
    late: int = 0
    withheld: int = 0
    # The times of the first and last reward and of the last reaction, in microseconds since the
    # epoch: integers compare and convert exactly, and no datetime is made per event.
    first_micros: int | None = None
    last_micros: int | None = None
    last_reaction_micros: int | None = None

    def rewarded(self, example: LoggedReward, micros: int) -> None:
        self.examples.append(example)
        if self.first_micros is None or self.last_micros is None:
            self.first_micros = self.last_micros = micros
        elif micros < self.first_micros:
            self.first_micros = micros
        elif micros > self.last_micros:
            self.last_micros = micros

    @property
    def last_reaction_at(self) -> datetime | None:
        return None if self.last_reaction_micros is None else _from_micros(self.last_reaction_micros)

    @property
    def trained(self) -> TrainingRange | None:
        """The training range of the examples: the times of their first and last reward."""
        if self.first_micros is None or self.last_micros is None:
            return None
        return TrainingRange(start=_from_micros(self.first_micros), end=_from_micros(self.last_micros))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    # Exactly `events.from_timestamp` of the same instant: integer microseconds on the UTC epoch.
    return _EPOCH + timedelta(microseconds=micros)


def _stamp_micros(stamp: Timestamp) -> int:
    """Return a payload's Timestamp in microseconds since the epoch (to the microsecond, as `from_timestamp`)."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, kw_only=True)
class TrainingRange:
    """The times of the oldest and newest reward (a reaction, or the default) a model learned."""

    start: datetime
    end: datetime

    def union(self, other: TrainingRange | None) -> TrainingRange:
        if other is None:
            return self
        return TrainingRange(start=min(self.start, other.start), end=max(self.end, other.end))


LearnedMessage = events.messages.TipDecided | events.messages.FeedbackReaction | events.messages.RewardDefaulted


# The payload message of each event type the learner learns from.
_LEARNED_MESSAGES = {kind: events.payload_type(kind) for kind in LEARNED_EVENT_TYPES}


def decode(batch: Iterable[events.Event]) -> list[tuple[events.Event, LearnedMessage]]:
    """Return each learned event with its payload, decoded once for the whole join.

    The payload class is looked up once per type here rather than through `Event.message`,
    which checks the type against every known one for each event.
    """
    decoded = []
    for event in batch:
        kind = _LEARNED_MESSAGES.get(event.type)
        if kind is None:
            raise TypeError(f"the learner does not learn from {event.type!r} events")
        if event.encrypted:
            raise ValueError(f"event {event.id} is sealed with its subject's data key; the bus opens it")
        decoded.append((event, cast(LearnedMessage, kind.FromString(event.payload))))
    return decoded


# The reaction of each `Reaction` enum number of feedback.reaction (as FeedbackReaction.from_message reads it).
_REACTION_OF_NUMBER = {events.messages.Reaction.Value(f"REACTION_{reaction.name}"): reaction for reaction in Reaction}


class TipInstanceIds:
    """Parses the tip instance ids of payloads, each distinct text once (a decision and its reaction share one)."""

    def __init__(self) -> None:
        self._ids: dict[str, UUID] = {}

    def __call__(self, text: str) -> UUID:
        found = self._ids.get(text)
        if found is None:
            found = self._ids[text] = UUID(text)
        return found


def join(
    batch: Iterable[tuple[events.Event, LearnedMessage]],
    *,
    rewards: RewardMap,
    remember: Callable[[Pending], None],
    take: Callable[[UUID], Pending | None],
    ids: TipInstanceIds | None = None,
) -> Outcome:
    """Turn decoded events into learning examples, in log order; `remember`/`take` keep the pending decisions.

    It reads the payload messages directly (what `TipDecided.from_message` and
    `FeedbackReaction.from_message` would give, field by field), without building those DTOs:
    this loop runs for every event the learner learns from.
    """
    outcome = Outcome()
    parse = ids or TipInstanceIds()
    reward_of = {number: rewards.reward(reaction.value) for number, reaction in _REACTION_OF_NUMBER.items()}
    default = rewards.default
    for event, message in batch:
        if isinstance(message, events.messages.TipDecided):
            # Absent consent fields read as granted (events logged before they existed).
            learnable = (not message.HasField("personalized") or message.personalized) and (
                not message.HasField("model_training") or message.model_training
            )
            if not learnable:
                outcome.withheld += 1
                continue
            remember(
                Pending(
                    tip_instance_id=parse(message.tip_instance_id),
                    shared=_features(message.shared),
                    action=_features(message.action),
                    propensity=message.propensity,
                    message=message,
                    subject=event.subject,
                )
            )
        elif isinstance(message, events.messages.FeedbackReaction):
            reward = reward_of.get(message.reaction)
            if reward is None:
                raise ValueError(f"feedback.reaction carries no known reaction (enum value {message.reaction})")
            pending = take(parse(message.tip_instance_id))
            if message.HasField("learnable") and not message.learnable:
                outcome.withheld += pending is not None
                continue
            if pending is None:
                outcome.late += 1
                continue
            at = _stamp_micros(message.reacted_at)
            outcome.rewarded(_example(pending, reward), at)
            outcome.reactions += 1
            outcome.last_reaction_micros = at
        else:
            pending = take(parse(message.tip_instance_id))
            if pending is not None:  # else a reaction came first, or a duplicate verdict
                outcome.rewarded(_example(pending, default), _micros(event.time))
                outcome.timeouts += 1
    return outcome


def _features(features: Mapping[str, float]) -> dict[str, float]:
    # In key order, as `TipDecided.from_message` reads them: learning sums features in this order.
    # (Iterating the keys of a Protobuf map is much faster than its items().)
    return {name: features[name] for name in sorted(features)}


def _person(subject: str) -> UUID | None:
    try:
        return UUID(subject)
    except ValueError:
        return None


def _example(pending: Pending, reward: float) -> LoggedReward:
    return LoggedReward(shared=pending.shared, action=pending.action, propensity=pending.propensity, reward=reward)


def fresh_models(specs: dict[str, PolicySpec], features: FeatureSpec) -> dict[str, Policy]:
    return {name: build_policy(spec, features=features) for name, spec in specs.items()}


@dataclass(frozen=True, kw_only=True)
class SnapshotCadence:
    """Publish a snapshot after `every_rewards` rewards or `every_seconds`, whichever comes first."""

    every_rewards: int = 100
    every_seconds: float = 60.0


class Learner:
    """Trains its own copy of every registered policy and publishes it after each commit."""

    name = "learner"
    event_types = LEARNED_EVENT_TYPES | {events.USER_DELETED}

    def __init__(
        self,
        *,
        db: Database,
        registry: PolicyRegistry,
        rewards: RewardMap,
        clock: Clock,
        metrics: Metrics,
        models: ModelRegistry | None = None,
        cadence: SnapshotCadence | None = None,
        history: History | None = None,
        blas: BlasThreads | None = None,
    ) -> None:
        self._db = db
        # The BLAS threads its matrix products may use (one by default: see `tipwise.kernel.blas`).
        self._blas = blas or BlasThreads(1)
        self._registry = registry
        self._rewards = rewards
        self._clock = clock
        self._metrics = metrics
        self._snapshots = models
        self._cadence = cadence or SnapshotCadence()
        self._history = history
        self._rebuilt = False
        self._models: dict[str, Policy] = {}
        self._trained: dict[str, TrainingRange | None] = {}
        self._states: dict[str, tuple[Policy, int, bytes]] = {}
        self._dirty = False
        self._last_reaction_at: datetime | None = None
        self._unsnapshotted = 0
        self._before_batch: tuple[datetime | None, int] = (None, 0)
        self._last_snapshot_at = clock.now()
        self._snapshot_failed_at: datetime | None = None
        self.restore()

    @property
    def reward_map(self) -> RewardMap:
        return self._rewards

    def model(self, name: str) -> Policy:
        """Return the training copy of a policy (for inspection; do not mutate)."""
        return self._models[name]

    def restore(self) -> None:
        """Load the stored models; a model whose spec changed starts fresh."""
        with self._blas.limited():
            self._restore()

    def _restore(self) -> None:
        with self._db.read() as session:
            stored = repository.models(session)
        self._models = fresh_models(self._registry.specs, self._registry.features)
        self._trained = dict.fromkeys(self._models)
        converted = []
        for name, model in self._models.items():
            row = stored.get(name)
            if row is not None and self._compatible(row, model):
                model.load_state(row.state)
                if row.trained_from is not None and row.trained_until is not None:
                    self._trained[name] = TrainingRange(start=row.trained_from, end=row.trained_until)
                converted += [name] if state_is_converted(model) else []
            elif row is not None:
                log.warning("model_reset", policy=name, reason="spec, features or reward map changed")
        if converted:
            self._rebuild_converted(converted)
        self._publish()

    def _rebuild_converted(self, names: Sequence[str]) -> None:
        """Replace models stored in a format before the exact statistics by a replay of the applied events.

        The converted state answers like the stored one up to rounding, but only a
        replay makes the model equal, bit for bit, to what the log rebuilds.
        """
        if self._history is None:
            log.warning("model_state_converted", policies=list(names), reason="no event history to replay")
            return
        started = time.perf_counter()
        with self._db.write() as session:
            rebuilt = replay(
                self._history(session),
                specs=self._registry.specs,
                features=self._registry.features,
                rewards=self._rewards,
            )
            now = self._clock.now()
            for name in names:
                self._models[name] = rebuilt[name]
                repository.save_model(session, self._row(name, rebuilt[name], now))
        log.info("models_rebuilt_from_old_state_format", policies=list(names), seconds=time.perf_counter() - started)

    def _compatible(self, row: ModelRow, model: Policy) -> bool:
        return (
            row.spec == model.spec_dict()
            and row.feature_spec == self._registry.features.name
            and row.reward_map_version == self._rewards.version
        )

    # -- consumer protocol -----------------------------------------------------

    def apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        with self._blas.limited():
            self._apply(session, batch)

    def _apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        self._before_batch = (self._last_reaction_at, self._unsnapshotted)
        learned = [event for event in batch if event.type in LEARNED_EVENT_TYPES]
        if learned:
            self._apply_learned(session, learned)
        erased = [event for event in batch if event.type == events.USER_DELETED]
        if erased:
            # The batch's own events are not tracked yet: the rebuild replays them after the history.
            self._rebuild(session, erased=len(erased), tail=learned)

    def _apply_learned(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        # One query loads every stored decision the batch may refer to; decisions made and
        # rewarded within the batch never touch the table; the rest is written in bulk.
        decoded = decode(batch)
        # Parsed once per decision: its tip.decided and its reaction often share a batch.
        ids = TipInstanceIds()
        referenced = {ids(text) for text in {message.tip_instance_id for _, message in decoded}}
        stored = {
            key: Pending(
                tip_instance_id=row.tip_instance_id,
                stored_decided_at=row.decided_at,
                shared=row.shared,
                action=row.action,
                propensity=row.propensity,
            )
            for key, row in repository.pending(session, referenced).items()
        }
        fresh: dict[UUID, Pending] = {}
        taken: list[UUID] = []

        def remember(pending: Pending) -> None:
            if pending.tip_instance_id not in stored:
                fresh.setdefault(pending.tip_instance_id, pending)

        def take(tip_instance_id: UUID) -> Pending | None:
            found = fresh.pop(tip_instance_id, None)
            if found is None:
                found = stored.pop(tip_instance_id, None)
                if found is not None:
                    taken.append(tip_instance_id)
            return found

        outcome = join(decoded, rewards=self._rewards, remember=remember, take=take, ids=ids)
        repository.remove_pending(session, taken)
        repository.add_pending(
            session,
            [
                {
                    "tip_instance_id": p.tip_instance_id,
                    "decided_at": p.decided_at,
                    "feature_spec": self._registry.features.name,
                    "shared": p.shared,
                    "action": p.action,
                    "propensity": p.propensity,
                    "user_id": p.user_id,
                }
                for p in fresh.values()
            ],
        )
        if outcome.late:
            self._metrics.late_rewards.inc(outcome.late)
            log.info("late_rewards_ignored", count=outcome.late)
        if outcome.withheld:
            log.info("examples_withheld_for_consent", count=outcome.withheld)
        if outcome.reactions:
            self._metrics.rewards.labels(source="reaction").inc(outcome.reactions)
        if outcome.timeouts:
            self._metrics.rewards.labels(source="timeout").inc(outcome.timeouts)
        if outcome.last_reaction_at is not None:
            self._last_reaction_at = outcome.last_reaction_at
        self._learn(session, outcome.examples, outcome.trained)

    def committed(self) -> None:
        if self._dirty:
            with self._blas.limited():
                self._publish()
        if self._rebuilt:
            # A rebuilt model replaces every snapshot that still holds the erased person: now, not by cadence.
            self.snapshot_if_due()
        # Snapshots by cadence are the worker's job (`snapshot_if_due`), run once the log is drained or every
        # job interval under load: not after every batch, which would write them hundreds of times a second.

    def aborted(self) -> None:
        self._last_reaction_at, self._unsnapshotted = self._before_batch
        self._rebuilt = False
        self.restore()

    # -- reward wait -----------------------------------------------------------

    def expire(self, now: datetime | None = None) -> int:
        """Publish `reward.defaulted` for decisions whose reward wait has passed; return how many."""
        moment = now or self._clock.now()
        cutoff = moment - self._rewards.wait
        with self._db.read() as session:
            if not repository.expired(session, decided_before=cutoff, limit=1):
                return 0  # the common case: no write transaction, no lock
        with self._db.write() as session:
            expired = repository.expired(session, decided_before=cutoff, limit=EXPIRE_BATCH)
            for tip_instance_id in expired:
                events.publish(
                    session,
                    events.Event.create(
                        type=events.REWARD_DEFAULTED,
                        subject="system:learner",
                        time=moment,
                        message=events.messages.RewardDefaulted(tip_instance_id=str(tip_instance_id)),
                    ),
                )
        return len(expired)

    # -- snapshots -------------------------------------------------------------

    def snapshot(self) -> list[ModelSnapshot]:
        """Write every model to the model registry now; return what was written."""
        if self._snapshots is None:
            return []
        written = [self._snapshots.publish(self._snapshot_of(name, model)) for name, model in self._models.items()]
        self._unsnapshotted = 0
        self._rebuilt = False
        self._last_snapshot_at = self._clock.now()
        self._snapshot_failed_at = None
        return written

    def snapshot_if_due(self) -> None:
        """Snapshot when due: after N rewards, T seconds after an unsnapshotted one, or after a rebuild.

        A model registry that fails (a remote MLflow that is down) does not stop
        learning, nor fail the events just applied: the models are safe in the
        database. The failure is logged and counted, and the next attempt comes
        T seconds later.
        """
        now = self._clock.now()
        interval = self._cadence.every_seconds
        if self._snapshot_failed_at is not None and (now - self._snapshot_failed_at).total_seconds() < interval:
            return
        due = (
            # A rebuilt model replaces every snapshot that still holds the erased person.
            self._rebuilt
            or self._unsnapshotted >= self._cadence.every_rewards
            or (self._unsnapshotted > 0 and (now - self._last_snapshot_at).total_seconds() >= interval)
        )
        if not due:
            return
        try:
            self.snapshot()
        except Exception:
            self._snapshot_failed_at = now
            self._metrics.snapshot_failures.inc()
            log.exception("snapshot_failed", retry_in_seconds=interval)

    def _snapshot_of(self, name: str, model: Policy) -> ModelSnapshot:
        trained = self._trained.get(name)
        return ModelSnapshot(
            name=name,
            version=model.version,
            spec=model.spec_dict(),
            feature_spec=self._registry.features.name,
            reward_map=self._rewards.describe(),
            state=self._state(name, model),
            created_at=self._clock.now(),
            learned_until=self._last_reaction_at,
            trained_from=trained.start if trained else None,
            trained_until=trained.end if trained else None,
            metrics={"rewards": model.version},
        )

    # -- erasure ----------------------------------------------------------------

    def _rebuild(self, session: WriteSession, *, erased: int, tail: Sequence[events.Event]) -> None:
        """Replace every model with a replay of the applied events that are still readable."""
        if self._history is None:
            log.warning("rebuild_skipped", reason="this learner has no event history to replay")
            return
        started = time.perf_counter()
        history = self._history(session)
        models, trained = _replay(
            itertools.chain(history, tail),
            specs=self._registry.specs,
            features=self._registry.features,
            rewards=self._rewards,
        )
        self._trained = dict.fromkeys(models, trained)
        now = self._clock.now()
        for name, model in models.items():
            repository.save_model(session, self._row(name, model, now))
        self._models = models
        self._dirty = True
        self._rebuilt = True
        seconds = time.perf_counter() - started
        self._metrics.model_rebuild_seconds.observe(seconds)
        log.info("models_rebuilt_after_erasure", people=erased, seconds=round(seconds, 3))

    # -- internals -------------------------------------------------------------

    def _row(self, name: str, model: Policy, now: datetime) -> ModelRow:
        trained = self._trained.get(name)
        return ModelRow(
            name=name,
            spec=model.spec_dict(),
            feature_spec=self._registry.features.name,
            reward_map_version=self._rewards.version,
            version=model.version,
            state=self._state(name, model),
            updated_at=now,
            trained_from=trained.start if trained else None,
            trained_until=trained.end if trained else None,
        )

    def _learn(self, session: WriteSession, examples: Sequence[LoggedReward], trained: TrainingRange | None) -> None:
        if not examples:
            return
        now = self._clock.now()
        learn_together(self._models.values(), examples)
        for name, model in self._models.items():
            if trained is not None:
                self._trained[name] = trained.union(self._trained.get(name))
            repository.save_model(session, self._row(name, model, now))
        self._unsnapshotted += len(examples)
        self._dirty = True

    def _state(self, name: str, model: Policy) -> bytes:
        """Return the state bytes of `model`, serialized once per learned batch for storing, serving and snapshots."""
        cached = self._states.get(name)
        if cached is not None and cached[0] is model and cached[1] == model.version:
            return cached[2]
        state = model.state_bytes()
        self._states[name] = (model, model.version, state)
        return state

    def _publish(self) -> None:
        for name, model in self._models.items():
            # An independent copy: the served model never changes under a pick in flight.
            published = copy_policy(
                model, self._registry.specs[name], self._registry.features, state=self._state(name, model)
            )
            self._registry.publish(name, published, learned_until=self._last_reaction_at)
            self._metrics.model_version.labels(policy=name).set(model.version)
        self._dirty = False


def replay(
    log: Iterable[events.Event], *, specs: dict[str, PolicySpec], features: FeatureSpec, rewards: RewardMap
) -> dict[str, Policy]:
    """Rebuild every model from the event log alone, exactly as the learner built it."""
    return _replay(log, specs=specs, features=features, rewards=rewards)[0]


def _replay(
    log: Iterable[events.Event], *, specs: dict[str, PolicySpec], features: FeatureSpec, rewards: RewardMap
) -> tuple[dict[str, Policy], TrainingRange | None]:
    models = fresh_models(specs, features)
    pending: dict[UUID, Pending] = {}

    def remember(item: Pending) -> None:
        pending.setdefault(item.tip_instance_id, item)

    outcome = join(
        decode(event for event in log if event.type in LEARNED_EVENT_TYPES),
        rewards=rewards,
        remember=remember,
        take=lambda tip_instance_id: pending.pop(tip_instance_id, None),
    )
    learn_together(models.values(), outcome.examples)
    return models, outcome.trained


def same_state(left: bytes, right: bytes) -> bool:
    """Return whether two model states are bit-for-bit equal (array by array for `.npz` states)."""
    if left == right:
        return True
    try:
        with np.load(io.BytesIO(left)) as a, np.load(io.BytesIO(right)) as b:
            return set(a.files) == set(b.files) and all(
                a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes() for key in a.files
            )
    except (ValueError, OSError, zipfile.BadZipFile):
        return False


def stored_states(db: Database) -> dict[str, bytes]:
    """Return the learner's stored state bytes per policy."""
    with db.read() as session:
        return {name: row.state for name, row in repository.models(session).items()}
