"""Synthetic event logs for the benchmarks: decisions on the bundled tips and a reaction to each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from tipwise import events
from tipwise.advice import DEFAULT_LIBRARY, load_library
from tipwise.kernel.ids import new_id
from tipwise.profile import Purpose
from tipwise.recommender import FEATURE_SPEC, FeedbackReaction, Reaction, TipDecided
from tipwise.recommender.domain.features import FeatureAssembler


def decisions_and_reactions(pairs: int, *, now: datetime) -> Iterator[events.Event]:
    """Yield `pairs` times a `tip.decided` and its `feedback.reaction` (reactions in turn), for one person."""
    tips = load_library(DEFAULT_LIBRARY).tips
    context = FeatureAssembler().assemble(local_now=now, history=[], tips=tips, purposes=frozenset(Purpose))
    reactions = list(Reaction)
    user = new_id()
    for n in range(pairs):
        tip = tips[n % len(tips)]
        instance = new_id()
        decided = TipDecided(
            tip_instance_id=instance,
            user_id=user,
            tip_id=tip.id,
            policy="linucb",
            model_version=0,
            feature_spec=FEATURE_SPEC.name,
            shared=context.shared,
            action=context.actions[tip.id],
            propensity=0.05,
            decided_at=now,
        )
        reaction = FeedbackReaction(
            tip_instance_id=instance, user_id=user, reaction=reactions[n % len(reactions)], reacted_at=now
        )
        yield events.Event.create(type=events.TIP_DECIDED, subject=str(user), time=now, message=decided.to_message())
        yield events.Event.create(
            type=events.FEEDBACK_REACTION, subject=str(user), time=now, message=reaction.to_message()
        )
