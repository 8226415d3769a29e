"""Unit tests of the advice vocabulary: parts of the day, conditions, tips."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tipwise.advice.domain import Category, Condition, Effort, TimeOfDay, Tip, time_of_day

PARIS = ZoneInfo("Europe/Paris")

# 2026-01-05 is a Monday, 2026-01-09 a Friday, 2026-01-10 a Saturday and 2026-01-11 a Sunday.
MONDAY = (2026, 1, 5)
FRIDAY = (2026, 1, 9)
SATURDAY = (2026, 1, 10)
SUNDAY = (2026, 1, 11)


def local(day: tuple[int, int, int], hour: int, minute: int = 0) -> datetime:
    return datetime(*day, hour, minute, tzinfo=PARIS)


class TestTimeOfDay:
    @pytest.mark.parametrize(
        ("hour", "minute", "expected"),
        [
            (0, 0, TimeOfDay.NIGHT),
            (4, 59, TimeOfDay.NIGHT),
            (5, 0, TimeOfDay.MORNING),
            (11, 59, TimeOfDay.MORNING),
            (12, 0, TimeOfDay.AFTERNOON),
            (16, 59, TimeOfDay.AFTERNOON),
            (17, 0, TimeOfDay.EVENING),
            (21, 59, TimeOfDay.EVENING),
            (22, 0, TimeOfDay.NIGHT),
            (23, 59, TimeOfDay.NIGHT),
        ],
    )
    def test_local_clock_time_falls_in_its_part_of_the_day(self, hour: int, minute: int, expected: TimeOfDay) -> None:
        assert time_of_day(local(MONDAY, hour, minute)) is expected

    def test_part_of_the_day_reads_the_wall_time_of_the_zone_given(self) -> None:
        # 06:30 UTC is 07:30 in Paris (morning) but 22:30 the evening before in Los Angeles (night).
        instant = datetime(2026, 1, 5, 6, 30, tzinfo=ZoneInfo("UTC"))

        assert time_of_day(instant.astimezone(PARIS)) is TimeOfDay.MORNING
        assert time_of_day(instant.astimezone(ZoneInfo("America/Los_Angeles"))) is TimeOfDay.NIGHT


class TestCondition:
    @pytest.mark.parametrize(
        ("moment", "weekday", "weekend", "work_hours", "off_hours"),
        [
            pytest.param(local(MONDAY, 8, 59), True, False, False, True, id="monday-08:59"),
            pytest.param(local(MONDAY, 9, 0), True, False, True, False, id="monday-09:00"),
            pytest.param(local(MONDAY, 16, 59), True, False, True, False, id="monday-16:59"),
            pytest.param(local(MONDAY, 17, 0), True, False, False, True, id="monday-17:00"),
            pytest.param(local(FRIDAY, 12, 0), True, False, True, False, id="friday-noon"),
            pytest.param(local(FRIDAY, 23, 30), True, False, False, True, id="friday-late"),
            pytest.param(local(SATURDAY, 0, 0), False, True, False, True, id="saturday-midnight"),
            pytest.param(local(SATURDAY, 10, 0), False, True, False, True, id="saturday-10:00"),
            pytest.param(local(SUNDAY, 15, 0), False, True, False, True, id="sunday-15:00"),
        ],
    )
    def test_each_rule_holds_exactly_at_the_expected_local_times(
        self, moment: datetime, weekday: bool, weekend: bool, work_hours: bool, off_hours: bool
    ) -> None:
        assert Condition.WEEKDAY.holds(moment) is weekday
        assert Condition.WEEKEND.holds(moment) is weekend
        assert Condition.WORK_HOURS.holds(moment) is work_hours
        assert Condition.OFF_HOURS.holds(moment) is off_hours

    def test_saturday_office_hours_are_not_work_hours(self) -> None:
        saturday_morning = local(SATURDAY, 10, 0)

        assert not Condition.WORK_HOURS.holds(saturday_morning)
        assert Condition.OFF_HOURS.holds(saturday_morning)

    def test_conditions_read_values_from_their_names_in_the_library(self) -> None:
        assert {c.value for c in Condition} == {"weekday", "weekend", "work_hours", "off_hours"}


def make_tip(condition: Condition | None) -> Tip:
    return Tip(
        id="focus-one-tab",
        title="Keep one tab open",
        body="Close every tab you do not need for the task in front of you.",
        category=Category.FOCUS,
        effort=Effort.LOW,
        minutes=2,
        times_of_day=frozenset({TimeOfDay.MORNING}),
        condition=condition,
    )


class TestTip:
    def test_tip_without_condition_is_eligible_at_any_time(self) -> None:
        tip = make_tip(None)

        assert tip.eligible_at(local(SATURDAY, 3, 0))
        assert tip.eligible_at(local(MONDAY, 10, 0))

    def test_tip_with_condition_is_eligible_only_when_the_condition_holds(self) -> None:
        tip = make_tip(Condition.WORK_HOURS)

        assert tip.eligible_at(local(MONDAY, 10, 0))
        assert not tip.eligible_at(local(MONDAY, 18, 0))
        assert not tip.eligible_at(local(SATURDAY, 10, 0))

    def test_new_tip_is_active_by_default(self) -> None:
        assert make_tip(None).active is True
