"""Helpers for tests that look at decisions."""

from __future__ import annotations

from uuid import UUID

from tipwise.bootstrap import Container
from tipwise.recommender import FeedbackRequest, NextTipOut, Reaction, TipOut


def shown(decision: NextTipOut | None) -> TipOut:
    """Return the tip a decision shows; fails the test when there is none."""
    assert decision is not None, "expected a decision"
    assert decision.tip is not None, "expected a tip, not 'send nothing'"
    return decision.tip


def decide_and_react(
    container: Container, user_id: UUID, *, key: str, reaction: Reaction = Reaction.DONE
) -> NextTipOut:
    """Ask for a tip for `user_id` and react to it with `reaction` (idempotency key `key`); return the decision."""
    decision = container.recommender.next_tip(user_id=user_id)
    assert decision is not None, "expected a decision"
    container.recommender.record_feedback(
        user_id=user_id,
        request=FeedbackRequest(tip_instance_id=decision.tip_instance_id, reaction=reaction, idempotency_key=key),
    )
    return decision
