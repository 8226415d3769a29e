"""iCalendar feeds for tests, written as a provider publishes them."""

from __future__ import annotations

from datetime import UTC, datetime

# The FakeClock starts on Monday 2026-01-05 at 09:00 UTC (10:00 in Berlin, 04:00 in New York).
WORK_CALENDAR = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Example Corp//Calendar 1.0//EN\r
X-WR-CALNAME:Work\r
BEGIN:VEVENT\r
UID:standup@example.com\r
SUMMARY:Daily standup\r
DTSTART;TZID=Europe/Berlin:20260101T100000\r
DTEND;TZID=Europe/Berlin:20260101T103000\r
RRULE:FREQ=DAILY\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:overlap@example.com\r
SUMMARY:Runs over the standup\r
DTSTART:20260105T092000Z\r
DTEND:20260105T100000Z\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:call@example.com\r
SUMMARY:Call with New York\r
DTSTART;TZID=America/New_York:20260105T110000\r
DTEND;TZID=America/New_York:20260105T120000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:gym@example.com\r
SUMMARY:Gym\r
DTSTART;TZID=Europe/Berlin:20251229T183000\r
DTEND;TZID=Europe/Berlin:20251229T193000\r
RRULE:FREQ=WEEKLY;BYDAY=MO,TU\r
EXDATE;TZID=Europe/Berlin:20260106T183000\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:focus@example.com\r
SUMMARY:Focus time (shown as free)\r
DTSTART:20260105T130000Z\r
DTEND:20260105T140000Z\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled@example.com\r
SUMMARY:Cancelled lunch\r
DTSTART:20260106T120000Z\r
DTEND:20260106T130000Z\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:holiday@example.com\r
SUMMARY:A holiday\r
DTSTART;VALUE=DATE:20260106\r
DTEND;VALUE=DATE:20260107\r
END:VEVENT\r
END:VCALENDAR\r
"""


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


# The busy intervals of WORK_CALENDAR in the 48 hours from the FakeClock's start, merged.
WORK_BUSY = [
    (utc(5, 9), utc(5, 10)),  # standup 10:00-10:30 Berlin, merged with the meeting running over it
    (utc(5, 16), utc(5, 17)),  # 11:00-12:00 New York
    (utc(5, 17, 30), utc(5, 18, 30)),  # gym on Monday 18:30 Berlin; Tuesday's is excluded (EXDATE)
    (utc(6, 9), utc(6, 9, 30)),  # Tuesday's standup
]
