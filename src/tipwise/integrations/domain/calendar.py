"""Turn an iCalendar feed into the busy intervals of a time window.

Recurring events are expanded (RRULE, RDATE, EXDATE and moved occurrences)
by `recurring-ical-events`; time zones come from the feed's TZID parameters
and VTIMEZONE blocks. What counts as busy:

- an event with a start and end time that is not cancelled (`STATUS:CANCELLED`)
  and not marked free (`TRANSP:TRANSPARENT`);
- not an all-day event: those mark days (holidays, birthdays, trips), and
  calendars publish most of them as free time anyway;
- a "floating" time (no zone in the feed) is read in the person's time zone.

Only the start and end of each busy interval leave this module: never a
title, place, attendee or description.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import icalendar
import recurring_ical_events

# A feed expanding to more intervals than this in the window is cut: the features need the next few hours.
MAX_INTERVALS = 2000


class NotACalendar(ValueError):
    """The body is not an iCalendar feed; the message says why, without quoting the body."""


@dataclass(frozen=True, kw_only=True, order=True)
class BusyInterval:
    """Time the person is busy, [start, end), in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("busy intervals are timezone-aware")
        if self.end <= self.start:
            raise ValueError("a busy interval ends after it starts")


def parse_calendar(body: bytes) -> icalendar.Calendar:
    """Return the parsed feed; raise NotACalendar when `body` is not one VCALENDAR."""
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").upper().startswith(b"BEGIN:VCALENDAR"):
        raise NotACalendar("the address did not answer with an iCalendar file (it must start with BEGIN:VCALENDAR)")
    try:
        calendar = icalendar.Calendar.from_ical(body)
    except ValueError:
        raise NotACalendar("the iCalendar file is malformed and could not be read") from None
    if not isinstance(calendar, icalendar.Calendar) or calendar.name != "VCALENDAR":
        raise NotACalendar("the address did not answer with an iCalendar file")
    return calendar


def busy_intervals(body: bytes, *, start: datetime, end: datetime, zone: tzinfo) -> list[BusyInterval]:
    """Return the merged busy intervals of the feed overlapping [start, end), sorted; raise NotACalendar."""
    calendar = parse_calendar(body)
    try:
        occurrences: Iterable[Any] = recurring_ical_events.of(calendar).between(start, end)
        found = [interval for event in occurrences if (interval := _busy(event, zone=zone)) is not None]
    except (ValueError, TypeError, KeyError) as exc:
        raise NotACalendar(
            f"the iCalendar file has an event that could not be expanded ({type(exc).__name__})"
        ) from None
    return merge(i for i in found if i.end > start and i.start < end)[:MAX_INTERVALS]


def _busy(event: Any, *, zone: tzinfo) -> BusyInterval | None:
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    begin = event.decoded("DTSTART")
    if not isinstance(begin, datetime):  # an all-day event (a date)
        return None
    if "DTEND" in event:
        finish = event.decoded("DTEND")
    else:
        finish = begin + event.decoded("DURATION", timedelta(0))
    if isinstance(finish, date) and not isinstance(finish, datetime):
        return None
    first, last = _aware(begin, zone), _aware(finish, zone)
    if last <= first:
        return None
    return BusyInterval(start=first, end=last)


def _aware(moment: datetime, zone: tzinfo) -> datetime:
    # A floating time means "this wall-clock time wherever the person is".
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def merge(intervals: Iterable[BusyInterval]) -> list[BusyInterval]:
    """Return `intervals` sorted, with overlapping or touching ones merged."""
    merged: list[BusyInterval] = []
    for interval in sorted(intervals):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = BusyInterval(start=merged[-1].start, end=interval.end)
            continue
        merged.append(interval)
    return merged
