"""Helpers for tests that look at decisions."""

from __future__ import annotations

from tipwise.recommender import NextTipOut, TipOut


def shown(decision: NextTipOut | None) -> TipOut:
    """Return the tip a decision shows; fails the test when there is none."""
    assert decision is not None, "expected a decision"
    assert decision.tip is not None, "expected a tip, not 'send nothing'"
    return decision.tip
