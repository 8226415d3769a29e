"""Which tips may be shown to a person right now."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tipwise.advice import Category, Tip
from tipwise.recommender.domain.reactions import Reaction


@dataclass(frozen=True, kw_only=True)
class PastShow:
    """A tip the person was shown, and what they did with it."""

    tip_id: str
    category: Category
    decided_at: datetime
    reaction: Reaction | None = None
    reacted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class CandidateRules:
    """How long a shown tip stays out of rotation."""

    recent_window: timedelta = timedelta(hours=12)
    snooze_window: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        if self.recent_window < timedelta(0) or self.snooze_window < timedelta(0):
            raise ValueError("windows must not be negative")


def blocked_tips(history: Iterable[PastShow], *, now: datetime, rules: CandidateRules) -> set[str]:
    """Return ids of tips that must not be shown at `now`.

    A tip marked not-for-me never comes back. A snoozed tip comes back once
    the snooze window after the reaction has passed, even inside the recent
    window. Any other tip shown within the recent window waits.
    """
    blocked: set[str] = set()
    latest: dict[str, PastShow] = {}
    for show in history:
        if show.reaction is Reaction.NOT_FOR_ME:
            blocked.add(show.tip_id)
        current = latest.get(show.tip_id)
        if current is None or show.decided_at > current.decided_at:
            latest[show.tip_id] = show
    for tip_id, show in latest.items():
        if show.reaction is Reaction.SNOOZE and show.reacted_at is not None:
            if now < show.reacted_at + rules.snooze_window:
                blocked.add(tip_id)
        elif now < show.decided_at + rules.recent_window:
            blocked.add(tip_id)
    return blocked


def eligible_tips(
    tips: Sequence[Tip],
    *,
    history: Iterable[PastShow],
    muted: Collection[Category],
    local_now: datetime,
    now: datetime,
    rules: CandidateRules,
) -> list[Tip]:
    """Return the active tips that pass mute, not-for-me, recency and condition rules, in library order."""
    blocked = blocked_tips(history, now=now, rules=rules)
    return [
        tip
        for tip in tips
        if tip.active and tip.category not in muted and tip.id not in blocked and tip.eligible_at(local_now)
    ]
