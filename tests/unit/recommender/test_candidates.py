"""Unit tests of candidate eligibility: mutes, not-for-me, recency, snoozes, conditions."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tipwise.advice import Category, Condition, Effort, TimeOfDay, Tip
from tipwise.recommender.domain.candidates import CandidateRules, PastShow, blocked_tips, eligible_tips
from tipwise.recommender.domain.reactions import Reaction

RULES = CandidateRules(recent_window=timedelta(hours=12), snooze_window=timedelta(hours=2))
# A Wednesday at noon UTC: 13:00 in Paris, inside work hours.
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def make_tip(
    tip_id: str, category: Category = Category.FOCUS, *, condition: Condition | None = None, active: bool = True
) -> Tip:
    return Tip(
        id=tip_id,
        title=f"Tip {tip_id}",
        body="A body long enough to be a real tip in the library.",
        category=category,
        effort=Effort.LOW,
        minutes=5,
        times_of_day=frozenset(TimeOfDay),
        condition=condition,
        active=active,
    )


def shown(
    tip: Tip, decided_at: datetime, reaction: Reaction | None = None, reacted_at: datetime | None = None
) -> PastShow:
    return PastShow(
        tip_id=tip.id, category=tip.category, decided_at=decided_at, reaction=reaction, reacted_at=reacted_at
    )


def eligible_ids(
    tips: Sequence[Tip],
    *,
    history: Sequence[PastShow] = (),
    muted: Collection[Category] = (),
    now: datetime = NOW,
    local_now: datetime | None = None,
) -> list[str]:
    result = eligible_tips(
        tips,
        history=history,
        muted=muted,
        local_now=local_now if local_now is not None else now.astimezone(PARIS),
        now=now,
        rules=RULES,
    )
    return [tip.id for tip in result]


class TestCandidateRules:
    def test_default_windows_are_twelve_hours_recent_and_two_hours_snooze(self) -> None:
        rules = CandidateRules()

        assert rules.recent_window == timedelta(hours=12)
        assert rules.snooze_window == timedelta(hours=2)

    @pytest.mark.parametrize(
        ("recent", "snooze"),
        [(timedelta(hours=-1), timedelta(hours=2)), (timedelta(hours=12), timedelta(seconds=-1))],
    )
    def test_negative_window_is_rejected(self, recent: timedelta, snooze: timedelta) -> None:
        with pytest.raises(ValueError, match="must not be negative"):
            CandidateRules(recent_window=recent, snooze_window=snooze)


class TestEligibleTips:
    def test_tips_without_history_are_all_eligible_in_library_order(self) -> None:
        tips = [make_tip("c"), make_tip("a"), make_tip("b")]

        assert eligible_ids(tips) == ["c", "a", "b"]

    def test_library_order_is_kept_when_some_tips_drop_out(self) -> None:
        tips = [make_tip("d"), make_tip("c", Category.SLEEP), make_tip("b"), make_tip("a", active=False)]

        assert eligible_ids(tips, muted={Category.SLEEP}) == ["d", "b"]

    def test_muted_categories_are_excluded(self) -> None:
        tips = [
            make_tip("focus", Category.FOCUS),
            make_tip("sleep", Category.SLEEP),
            make_tip("cash", Category.FINANCE),
        ]

        assert eligible_ids(tips, muted={Category.SLEEP, Category.FINANCE}) == ["focus"]

    def test_inactive_tips_are_excluded(self) -> None:
        tips = [make_tip("retired", active=False), make_tip("current")]

        assert eligible_ids(tips) == ["current"]

    def test_tip_marked_not_for_me_never_returns_even_months_later(self) -> None:
        tip, other = make_tip("nope"), make_tip("other")
        decided = NOW - timedelta(days=200)
        history = [shown(tip, decided, Reaction.NOT_FOR_ME, decided + timedelta(minutes=1))]

        assert eligible_ids([tip, other], history=history) == ["other"]
        assert eligible_ids([tip, other], history=history, now=NOW + timedelta(days=365)) == ["other"]

    def test_tip_marked_not_for_me_stays_out_after_a_later_show(self) -> None:
        tip = make_tip("nope")
        history = [
            shown(tip, NOW - timedelta(days=30), Reaction.NOT_FOR_ME, NOW - timedelta(days=30)),
            shown(tip, NOW - timedelta(days=20), Reaction.DONE, NOW - timedelta(days=20)),
        ]

        assert eligible_ids([tip], history=history) == []

    def test_tip_shown_inside_the_recent_window_is_excluded(self) -> None:
        tip, other = make_tip("recent"), make_tip("other")
        history = [shown(tip, NOW - timedelta(hours=11, minutes=59))]

        assert eligible_ids([tip, other], history=history) == ["other"]

    def test_tip_shown_returns_once_the_recent_window_has_passed(self) -> None:
        tip = make_tip("recent")
        history = [shown(tip, NOW - timedelta(hours=12))]

        assert eligible_ids([tip], history=history) == ["recent"]

    @pytest.mark.parametrize("reaction", [Reaction.DONE, Reaction.DISMISS])
    def test_tip_with_a_plain_reaction_waits_for_the_recent_window(self, reaction: Reaction) -> None:
        tip = make_tip("reacted")
        decided = NOW - timedelta(hours=6)
        history = [shown(tip, decided, reaction, decided + timedelta(minutes=1))]

        assert eligible_ids([tip], history=history) == []
        assert eligible_ids([tip], history=history, now=decided + timedelta(hours=12)) == ["reacted"]

    def test_snoozed_tip_stays_out_before_the_snooze_window_ends(self) -> None:
        tip = make_tip("snoozed")
        decided = NOW - timedelta(hours=2)
        reacted = decided + timedelta(minutes=10)
        history = [shown(tip, decided, Reaction.SNOOZE, reacted)]

        # Two hours after the decision but only 1h50 after the snooze.
        assert eligible_ids([tip], history=history, now=NOW) == []
        assert eligible_ids([tip], history=history, now=reacted + timedelta(hours=2) - timedelta(seconds=1)) == []

    def test_snoozed_tip_returns_after_snooze_window_even_inside_recent_window(self) -> None:
        tip = make_tip("snoozed")
        decided = NOW - timedelta(hours=3)
        reacted = decided + timedelta(minutes=10)
        history = [shown(tip, decided, Reaction.SNOOZE, reacted)]

        back_at = reacted + timedelta(hours=2)
        assert back_at < decided + RULES.recent_window
        assert eligible_ids([tip], history=history, now=back_at) == ["snoozed"]

    def test_latest_show_decides_so_a_fresh_show_after_a_snooze_waits_the_recent_window(self) -> None:
        tip = make_tip("again")
        first = NOW - timedelta(hours=8)
        history = [
            shown(tip, NOW - timedelta(hours=1)),
            shown(tip, first, Reaction.SNOOZE, first + timedelta(minutes=5)),
        ]

        assert eligible_ids([tip], history=history) == []

    def test_tip_whose_condition_fails_at_the_local_time_is_excluded(self) -> None:
        weekend_only = make_tip("weekend", condition=Condition.WEEKEND)
        at_work = make_tip("work", condition=Condition.WORK_HOURS)
        anytime = make_tip("anytime")
        saturday = datetime(2026, 3, 7, 11, 0, tzinfo=PARIS)

        assert eligible_ids([weekend_only, at_work, anytime]) == ["work", "anytime"]
        assert eligible_ids([weekend_only, at_work, anytime], now=saturday.astimezone(UTC), local_now=saturday) == [
            "weekend",
            "anytime",
        ]

    def test_condition_is_checked_on_the_local_time_not_on_utc(self) -> None:
        at_work = make_tip("work", condition=Condition.WORK_HOURS)
        # 08:30 UTC on a Wednesday is 09:30 in Paris (work hours) and 03:30 in New York (not).
        now = datetime(2026, 3, 4, 8, 30, tzinfo=UTC)

        assert eligible_ids([at_work], now=now, local_now=now.astimezone(PARIS)) == ["work"]
        assert eligible_ids([at_work], now=now, local_now=now.astimezone(ZoneInfo("America/New_York"))) == []


class TestBlockedTips:
    def test_only_tips_with_a_blocking_show_are_blocked(self) -> None:
        recent, old, nope = make_tip("recent"), make_tip("old"), make_tip("nope")
        history = [
            shown(recent, NOW - timedelta(hours=1)),
            shown(old, NOW - timedelta(days=2)),
            shown(nope, NOW - timedelta(days=2), Reaction.NOT_FOR_ME, NOW - timedelta(days=2)),
        ]

        assert blocked_tips(history, now=NOW, rules=RULES) == {"recent", "nope"}

    def test_empty_history_blocks_nothing(self) -> None:
        assert blocked_tips([], now=NOW, rules=RULES) == set()

    def test_snooze_without_a_reaction_time_falls_back_to_the_recent_window(self) -> None:
        tip = make_tip("snoozed")
        history = [shown(tip, NOW - timedelta(hours=5), Reaction.SNOOZE, None)]

        assert blocked_tips(history, now=NOW, rules=RULES) == {"snoozed"}
