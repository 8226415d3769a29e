"""Unit tests of the preference rules the notifier applies: active hours, quiet hours, the daily cap."""

from __future__ import annotations

from datetime import datetime
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tipwise.advice import Category
from tipwise.profile import Channel, Preferences, PreferencesPatch, QuietHours, TimeWindow, Weekday

PARIS = ZoneInfo("Europe/Paris")
# 2026-03-02 is a Monday.
MONDAY = datetime(2026, 3, 2, tzinfo=PARIS)


def at(hour: int, minute: int = 0, *, day: int = 2) -> datetime:
    return MONDAY.replace(day=day, hour=hour, minute=minute)


def prefs(**fields: object) -> Preferences:
    return Preferences(user_id=uuid4(), timezone="Europe/Paris", **fields)  # type: ignore[arg-type]


class TestQuietHours:
    @pytest.mark.parametrize(
        ("hour", "minute", "quiet"), [(21, 59, False), (22, 0, True), (0, 30, True), (6, 59, True), (7, 0, False)]
    )
    def test_quiet_hours_that_wrap_midnight(self, hour: int, minute: int, quiet: bool) -> None:
        person = prefs(quiet_hours=QuietHours(start="22:00", end="07:00").window())
        assert person.is_quiet(at(hour, minute)) is quiet

    def test_quiet_hours_within_a_day(self) -> None:
        person = prefs(quiet_hours=TimeWindow(start=13 * 60, end=14 * 60))
        assert [person.is_quiet(at(h)) for h in (12, 13, 14)] == [False, True, False]

    def test_quiet_hours_may_not_cover_the_whole_day(self) -> None:
        with pytest.raises(ValidationError, match="whole day"):
            QuietHours(start="08:00", end="08:00")


class TestActiveHours:
    def test_a_weekday_left_out_is_active_all_day_and_an_empty_one_never(self) -> None:
        person = prefs(
            active_hours={Weekday.MON: (TimeWindow(start=9 * 60, end=12 * 60),), Weekday.SUN: ()},
        )
        assert [person.is_active(at(h)) for h in (8, 9, 11, 12)] == [False, True, True, False]
        assert person.is_active(at(3, day=3))  # Tuesday: not listed
        assert not person.is_active(at(12, day=8))  # Sunday: []

    def test_may_interrupt_combines_active_quiet_and_the_cap(self) -> None:
        person = prefs(quiet_hours=TimeWindow(start=22 * 60, end=7 * 60), frequency_cap_per_day=2)
        assert person.may_interrupt(at(10), sent_today=1)
        assert not person.may_interrupt(at(10), sent_today=2)
        assert not person.may_interrupt(at(23), sent_today=0)
        assert not prefs(frequency_cap_per_day=0).may_interrupt(at(10), sent_today=0)


class TestChannels:
    def test_a_category_left_out_is_in_app_only(self) -> None:
        person = prefs(channels={Category.SLEEP: frozenset({Channel.PUSH})})
        assert person.channels_for(Category.SLEEP) == {Channel.PUSH}
        assert person.channels_for(Category.FINANCE) == {Channel.IN_APP}


class TestPatch:
    def test_null_clears_and_omission_keeps(self) -> None:
        patch = PreferencesPatch.model_validate({"quiet_hours": None})
        assert patch.clears("quiet_hours")
        assert not patch.clears("frequency_cap_per_day")
