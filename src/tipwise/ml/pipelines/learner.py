"""The online learner: joins decisions with reactions, turns them into rewards, updates every policy.

It consumes `tip.decided` (remember what was shown, in which context, with
what probability) and `feedback.reaction` (look the decision up, apply the
reward). Decisions that get no reaction within the reward wait are learned
with the default reward by `expire`. The learned state of every policy is
written in the same transaction as the tracking rows of the events it
reflects, so a crash never applies an event twice or loses one; after each
commit the new models are published to the serving registry, and the next
decision uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tipwise import events
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database, WriteSession
from tipwise.kernel.logging import get_logger
from tipwise.kernel.metrics import Metrics
from tipwise.ml.pipelines import repository
from tipwise.ml.pipelines.models import ModelRow, PendingDecisionRow
from tipwise.ml.pipelines.rewards import RewardMap
from tipwise.ml.serving import LoggedReward, Policy, PolicyRegistry, build_policy, copy_policy
from tipwise.recommender import FeedbackReaction, TipDecided

log = get_logger(__name__)

EXPIRE_BATCH = 1000


class Learner:
    """Trains its own copy of every registered policy and publishes it after each commit."""

    name = "learner"
    event_types = frozenset({events.TIP_DECIDED, events.FEEDBACK_REACTION})

    def __init__(
        self, *, db: Database, registry: PolicyRegistry, rewards: RewardMap, clock: Clock, metrics: Metrics
    ) -> None:
        self._db = db
        self._registry = registry
        self._rewards = rewards
        self._clock = clock
        self._metrics = metrics
        self._models: dict[str, Policy] = {}
        self._dirty = False
        self.restore()

    @property
    def reward_map(self) -> RewardMap:
        return self._rewards

    def model(self, name: str) -> Policy:
        """Return the training copy of a policy (for inspection; do not mutate)."""
        return self._models[name]

    def restore(self) -> None:
        """Load the stored models; a model whose spec changed starts fresh."""
        with self._db.read() as session:
            stored = repository.models(session)
        features = self._registry.features
        self._models = {}
        for name, spec in self._registry.specs.items():
            model = build_policy(spec, features=features)
            row = stored.get(name)
            if row is not None and self._compatible(row, model):
                model.load_state(row.state)
            elif row is not None:
                log.warning("model_reset", policy=name, reason="spec, features or reward map changed")
            self._models[name] = model
        self._publish()

    def _compatible(self, row: ModelRow, model: Policy) -> bool:
        return (
            row.spec == model.spec_dict()
            and row.feature_spec == self._registry.features.name
            and row.reward_map_version == self._rewards.version
        )

    # -- consumer protocol -----------------------------------------------------

    def apply(self, session: WriteSession, batch: Sequence[events.Event]) -> None:
        examples: list[LoggedReward] = []
        for event in batch:
            if event.type == events.TIP_DECIDED:
                decided = TipDecided.from_data(event.data())
                repository.add_pending(
                    session,
                    PendingDecisionRow(
                        tip_instance_id=decided.tip_instance_id,
                        decided_at=decided.decided_at,
                        feature_spec=decided.feature_spec,
                        shared=decided.shared,
                        action=decided.action,
                        propensity=decided.propensity,
                    ),
                )
                session.flush()
            elif event.type == events.FEEDBACK_REACTION:
                reaction = FeedbackReaction.from_data(event.data())
                pending = repository.take_pending(session, reaction.tip_instance_id)
                if pending is None:
                    self._metrics.late_rewards.inc()
                    log.info("late_reward_ignored", tip_instance_id=str(reaction.tip_instance_id))
                    continue
                examples.append(self._example(pending, self._rewards.reward(reaction.reaction.value)))
        self._learn(session, examples, source="reaction")

    def committed(self) -> None:
        if self._dirty:
            self._publish()

    def aborted(self) -> None:
        self.restore()

    # -- reward wait -----------------------------------------------------------

    def expire(self, now: datetime | None = None) -> int:
        """Learn the default reward for decisions whose reward wait has passed; return how many."""
        cutoff = (now or self._clock.now()) - self._rewards.wait
        total = 0
        while True:
            try:
                with self._db.write() as session:
                    expired = repository.take_expired(session, decided_before=cutoff, limit=EXPIRE_BATCH)
                    examples = [self._example(row, self._rewards.default) for row in expired]
                    self._learn(session, examples, source="timeout")
            except BaseException:
                self.aborted()
                raise
            self.committed()
            total += len(expired)
            if len(expired) < EXPIRE_BATCH:
                return total

    # -- internals -------------------------------------------------------------

    @staticmethod
    def _example(row: PendingDecisionRow, reward: float) -> LoggedReward:
        return LoggedReward(shared=row.shared, action=row.action, propensity=row.propensity, reward=reward)

    def _learn(self, session: WriteSession, examples: Sequence[LoggedReward], *, source: str) -> None:
        if not examples:
            return
        now = self._clock.now()
        for name, model in self._models.items():
            model.learn(examples)
            repository.save_model(
                session,
                ModelRow(
                    name=name,
                    spec=model.spec_dict(),
                    feature_spec=self._registry.features.name,
                    reward_map_version=self._rewards.version,
                    version=model.version,
                    state=model.state_bytes(),
                    updated_at=now,
                ),
            )
        self._metrics.rewards.labels(source=source).inc(len(examples))
        self._dirty = True

    def _publish(self) -> None:
        for name, model in self._models.items():
            self._registry.publish(name, copy_policy(model, self._registry.specs[name], self._registry.features))
            self._metrics.model_version.labels(policy=name).set(model.version)
        self._dirty = False
