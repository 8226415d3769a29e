"""Tips and the vocabulary that describes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Category(StrEnum):
    MOVEMENT = "movement"
    FOCUS = "focus"
    SLEEP = "sleep"
    HYDRATION = "hydration"
    MINDFULNESS = "mindfulness"
    SOCIAL = "social"
    LEARNING = "learning"
    CHORES = "chores"
    FINANCE = "finance"


class Effort(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class TimeOfDay(StrEnum):
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"
    NIGHT = "night"


def time_of_day(local: datetime) -> TimeOfDay:
    """Return the part of the day a local time falls in (morning starts at 5, night at 22)."""
    hour = local.hour
    if 5 <= hour < 12:
        return TimeOfDay.MORNING
    if 12 <= hour < 17:
        return TimeOfDay.AFTERNOON
    if 17 <= hour < 22:
        return TimeOfDay.EVENING
    return TimeOfDay.NIGHT


WORK_START_HOUR = 9
WORK_END_HOUR = 17


class Condition(StrEnum):
    """A named eligibility rule, evaluated on the person's local time."""

    WEEKDAY = "weekday"
    WEEKEND = "weekend"
    WORK_HOURS = "work_hours"
    OFF_HOURS = "off_hours"

    def holds(self, local: datetime) -> bool:
        """Return whether the rule holds at `local` (a time in the person's own zone)."""
        weekday = local.weekday() < 5
        in_work_hours = weekday and WORK_START_HOUR <= local.hour < WORK_END_HOUR
        match self:
            case Condition.WEEKDAY:
                return weekday
            case Condition.WEEKEND:
                return not weekday
            case Condition.WORK_HOURS:
                return in_work_hours
            case Condition.OFF_HOURS:
                return not in_work_hours


@dataclass(frozen=True, kw_only=True)
class Tip:
    """One curated tip."""

    id: str
    title: str
    body: str
    category: Category
    effort: Effort
    minutes: int
    times_of_day: frozenset[TimeOfDay]
    condition: Condition | None = None
    active: bool = True

    def eligible_at(self, local: datetime) -> bool:
        """Return whether the tip's condition (if any) holds at the person's local time."""
        return self.condition is None or self.condition.holds(local)
