"""Reading iCalendar feeds into busy intervals: recurrence, time zones, what counts as busy."""

from __future__ import annotations

from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support.calendars import WORK_BUSY, WORK_CALENDAR, utc
from tipwise.integrations.domain.calendar import BusyInterval, NotACalendar, busy_intervals, merge

START = utc(5, 9)


def _pairs(intervals: list[BusyInterval]) -> list[tuple[object, object]]:
    return [(i.start, i.end) for i in intervals]


class TestBusyIntervals:
    def test_recurring_events_expand_in_their_own_time_zones_and_merge(self) -> None:
        found = busy_intervals(WORK_CALENDAR, start=START, end=START + timedelta(hours=48), zone=UTC)
        assert _pairs(found) == WORK_BUSY
        assert all(i.start.tzinfo is UTC for i in found)

    def test_the_window_cuts_the_expansion(self) -> None:
        found = busy_intervals(WORK_CALENDAR, start=START, end=START + timedelta(hours=8), zone=UTC)
        assert _pairs(found) == WORK_BUSY[:2]

    def test_daylight_saving_time_moves_the_utc_time_of_a_recurring_event(self) -> None:
        # In July, Berlin is UTC+2: the 10:00 standup is at 08:00 UTC.
        july = utc(5, 0).replace(month=7)
        found = busy_intervals(WORK_CALENDAR, start=july, end=july + timedelta(hours=24), zone=UTC)
        assert (july.replace(hour=8), july.replace(hour=8, minute=30)) in _pairs(found)

    def test_a_floating_time_is_read_in_the_persons_zone(self) -> None:
        feed = (
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:f\r\n"
            b"DTSTART:20260105T150000\r\nDTEND:20260105T160000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        tokyo = busy_intervals(feed, start=utc(5, 0), end=utc(6, 0), zone=ZoneInfo("Asia/Tokyo"))
        assert _pairs(tokyo) == [(utc(5, 6), utc(5, 7))]

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"<!doctype html><html><body>Sign in</body></html>", "BEGIN:VCALENDAR"),
            (b"", "BEGIN:VCALENDAR"),
            (b"BEGIN:VCALENDAR\r\nthis is not a content line\r\n", "malformed"),
        ],
    )
    def test_a_body_that_is_not_a_calendar_is_refused_with_a_reason(self, body: bytes, message: str) -> None:
        with pytest.raises(NotACalendar, match=message):
            busy_intervals(body, start=START, end=START + timedelta(hours=1), zone=UTC)


class TestMerge:
    def test_overlapping_and_touching_intervals_merge_and_others_stay_apart(self) -> None:
        a = BusyInterval(start=utc(5, 9), end=utc(5, 10))
        b = BusyInterval(start=utc(5, 9, 30), end=utc(5, 11))
        c = BusyInterval(start=utc(5, 11), end=utc(5, 12))
        d = BusyInterval(start=utc(5, 13), end=utc(5, 14))
        assert _pairs(merge([d, c, a, b])) == [(utc(5, 9), utc(5, 12)), (utc(5, 13), utc(5, 14))]

    def test_an_interval_must_end_after_it_starts(self) -> None:
        with pytest.raises(ValueError, match="ends after"):
            BusyInterval(start=utc(5, 9), end=utc(5, 9))
