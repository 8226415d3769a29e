"""Public DTOs of the profile module: preferences, consent purposes and the consent ledger."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from tipwise.advice import Category

DEFAULT_TIMEZONE = "UTC"
MINUTES_PER_DAY = 24 * 60
MAX_WINDOWS_PER_DAY = 4


def validate_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone known to this installation; raise ValueError otherwise."""
    if name not in _zones():
        raise ValueError(f"unknown IANA time zone {name!r} (for example 'Europe/Paris')")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


# -- preferences ------------------------------------------------------------------


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, moment: datetime) -> Weekday:
        return _WEEKDAYS[moment.weekday()]


_WEEKDAYS = tuple(Weekday)


class Channel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    PUSH = "push"


DEFAULT_CHANNELS = frozenset({Channel.IN_APP})


@dataclass(frozen=True, kw_only=True)
class TimeWindow:
    """Local minutes of the day [start, end); a window whose end is before its start wraps past midnight."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


def minute_of_day(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute


@dataclass(frozen=True, kw_only=True)
class Preferences:
    """What a person has told Tipwise about how and when they want tips.

    `active_hours` lists, per weekday, the local windows in which tips may
    arrive; a weekday left out is active all day, one with no windows is not
    active at all. `quiet_hours` may wrap midnight. `frequency_cap_per_day`
    None means no cap. `channels` maps a category to its delivery channels
    (in-app only for a category left out). The notifier applies these when
    it interrupts someone; see `may_interrupt`.
    """

    user_id: UUID
    timezone: str = DEFAULT_TIMEZONE
    muted_categories: frozenset[Category] = field(default_factory=frozenset)
    active_hours: Mapping[Weekday, tuple[TimeWindow, ...]] = field(default_factory=dict)
    quiet_hours: TimeWindow | None = None
    frequency_cap_per_day: int | None = None
    channels: Mapping[Category, frozenset[Channel]] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_quiet(self, local_now: datetime) -> bool:
        """Return whether `local_now` (in the person's zone) falls in their quiet hours."""
        return self.quiet_hours is not None and self.quiet_hours.contains(minute_of_day(local_now))

    def is_active(self, local_now: datetime) -> bool:
        """Return whether `local_now` falls in the person's active hours for that weekday."""
        windows = self.active_hours.get(Weekday.of(local_now))
        if windows is None:
            return True
        minute = minute_of_day(local_now)
        return any(window.contains(minute) for window in windows)

    def may_interrupt(self, local_now: datetime, *, sent_today: int) -> bool:
        """Return whether a tip may be pushed now: active, not quiet, and under the daily cap."""
        under_cap = self.frequency_cap_per_day is None or sent_today < self.frequency_cap_per_day
        return under_cap and self.is_active(local_now) and not self.is_quiet(local_now)

    def channels_for(self, category: Category) -> frozenset[Channel]:
        return self.channels.get(category, DEFAULT_CHANNELS)


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_minute(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


# "HH:MM" in 00:00-23:59; an active window may also end at 24:00.
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["22:30"])]
EndTime = Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", examples=["18:00"])]


class ActiveWindow(BaseModel):
    """A local time window within one day; `end` may be 24:00."""

    model_config = ConfigDict(extra="forbid")

    start: ClockTime
    end: EndTime

    @model_validator(mode="after")
    def _ordered(self) -> ActiveWindow:
        if parse_minute(self.end) <= parse_minute(self.start):
            raise ValueError("end must be after start within the day")
        return self

    def window(self) -> TimeWindow:
        return TimeWindow(start=parse_minute(self.start), end=parse_minute(self.end))

    @classmethod
    def of(cls, window: TimeWindow) -> ActiveWindow:
        return cls(start=format_minute(window.start), end=format_minute(window.end))


class QuietHours(BaseModel):
    """Local quiet hours; `end` before `start` wraps past midnight (22:00-07:00)."""

    model_config = ConfigDict(extra="forbid")

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _not_all_day(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must not cover the whole day (start equals end)")
        return self

    def window(self) -> TimeWindow:
        return TimeWindow(start=parse_minute(self.start), end=parse_minute(self.end))

    @classmethod
    def of(cls, window: TimeWindow) -> QuietHours:
        return cls(start=format_minute(window.start), end=format_minute(window.end))


DayWindows = Annotated[list[ActiveWindow], Field(max_length=MAX_WINDOWS_PER_DAY)]


class PreferencesOut(BaseModel):
    timezone: str
    muted_categories: list[Category]
    active_hours: dict[Weekday, list[ActiveWindow]] = Field(
        description="Per weekday, when tips may arrive; a weekday left out is active all day, [] never."
    )
    quiet_hours: QuietHours | None
    frequency_cap_per_day: int | None = Field(description="At most this many pushed tips per local day; null: no cap.")
    channels: dict[Category, list[Channel]]

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesOut:
        return cls(
            timezone=prefs.timezone,
            muted_categories=sorted(prefs.muted_categories),
            active_hours={
                day: [ActiveWindow.of(w) for w in prefs.active_hours[day]]
                for day in Weekday
                if day in prefs.active_hours
            },
            quiet_hours=QuietHours.of(prefs.quiet_hours) if prefs.quiet_hours else None,
            frequency_cap_per_day=prefs.frequency_cap_per_day,
            channels={category: sorted(prefs.channels_for(category)) for category in Category},
        )


class PreferencesPatch(BaseModel):
    """Fields to change; omitted fields keep their value, `null` clears quiet hours or the cap."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    muted_categories: list[Category] | None = None
    active_hours: dict[Weekday, DayWindows] | None = Field(
        default=None, description="Replaces the whole week: a weekday left out is active all day, [] never."
    )
    quiet_hours: QuietHours | None = None
    frequency_cap_per_day: int | None = Field(default=None, ge=0)
    channels: dict[Category, list[Channel]] | None = Field(
        default=None, description="Channels of the categories given; other categories keep theirs."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)

    @field_validator("active_hours")
    @classmethod
    def _no_overlap(cls, value: dict[Weekday, list[ActiveWindow]] | None) -> dict[Weekday, list[ActiveWindow]] | None:
        for day, windows in (value or {}).items():
            spans = sorted((w.window().start, w.window().end) for w in windows)
            for (_, end), (start, _) in itertools.pairwise(spans):
                if start < end:
                    raise ValueError(f"the windows of {day.value} overlap")
        return value

    @field_validator("channels")
    @classmethod
    def _distinct_channels(cls, value: dict[Category, list[Channel]] | None) -> dict[Category, list[Channel]] | None:
        for category, channels in (value or {}).items():
            if len(set(channels)) != len(channels):
                raise ValueError(f"channels of {category.value} are listed twice")
        return value

    def clears(self, name: str) -> bool:
        """Return whether the patch sets the nullable field `name` to null explicitly."""
        return name in self.model_fields_set and getattr(self, name) is None


# -- consents ---------------------------------------------------------------------


class Purpose(StrEnum):
    """What a person may consent to, one purpose at a time."""

    PERSONALIZATION = "personalization"
    CALENDAR_SIGNALS = "calendar_signals"
    ACTIVITY_SIGNALS = "activity_signals"
    EMAIL = "email"
    PUSH = "push"
    MODEL_TRAINING = "model_training"


# The wording shown for each purpose, by version. A new wording gets a new version (never edit one in
# place): the ledger records which version a person saw when they decided.
CONSENT_WORDINGS: dict[str, dict[Purpose, str]] = {
    "2026-11-26": {
        Purpose.PERSONALIZATION: "Use my past tips and reactions to choose the tips I see.",
        Purpose.CALENDAR_SIGNALS: "Read my connected calendar (busy/free times) to time tips.",
        Purpose.ACTIVITY_SIGNALS: "Read my connected activity data (steps, sleep) to choose and time tips.",
        Purpose.EMAIL: "Send me tips by email.",
        Purpose.PUSH: "Send me tips as push notifications.",
        Purpose.MODEL_TRAINING: "Use my reactions, without my identity, to improve the model everyone shares.",
    }
}
CONSENT_WORDING_VERSION = "2026-11-26"


class ConsentSource(StrEnum):
    API = "api"
    WEB = "web"


@dataclass(frozen=True, kw_only=True)
class ConsentEntry:
    """One line of the ledger: a decision about one purpose, never changed once written."""

    purpose: Purpose
    granted: bool
    wording_version: str
    recorded_at: datetime
    source: ConsentSource


@dataclass(frozen=True, kw_only=True)
class Consents:
    """A person's consents: the ledger, oldest first, and the latest decision per purpose.

    A purpose nobody decided on is not granted: Tipwise asks, it never assumes.
    """

    user_id: UUID
    ledger: tuple[ConsentEntry, ...] = ()

    @property
    def latest(self) -> dict[Purpose, ConsentEntry]:
        return {entry.purpose: entry for entry in self.ledger}

    @property
    def granted(self) -> frozenset[Purpose]:
        return frozenset(purpose for purpose, entry in self.latest.items() if entry.granted)

    @property
    def answered(self) -> bool:
        """Return whether the person has ever decided on any purpose (the onboarding screen was answered)."""
        return bool(self.ledger)

    def allows(self, purpose: Purpose) -> bool:
        return purpose in self.granted


class ConsentPort(Protocol):
    """What a connector or feature source asks before it reads or uses a signal.

    Ask before every sync run and before every use of stored data: a
    withdrawal takes effect at the next call (answers are never cached).
    """

    def allows(self, *, user_id: UUID, purpose: Purpose) -> bool: ...


class ConsentStateOut(BaseModel):
    granted: bool
    wording_version: str | None = Field(description="Wording shown when this was decided; null: never asked.")
    recorded_at: datetime | None


class ConsentEntryOut(BaseModel):
    purpose: Purpose
    granted: bool
    wording_version: str
    recorded_at: datetime
    source: ConsentSource


class ConsentsOut(BaseModel):
    purposes: dict[Purpose, ConsentStateOut]
    wording_version: str = Field(description="The current wording version; send it back with PUT once shown.")
    wording: dict[Purpose, str]
    history: list[ConsentEntryOut] = Field(description="The append-only ledger, oldest first.")

    @classmethod
    def of(cls, consents: Consents) -> ConsentsOut:
        latest = consents.latest
        return cls(
            purposes={
                purpose: ConsentStateOut(
                    granted=purpose in latest and latest[purpose].granted,
                    wording_version=latest[purpose].wording_version if purpose in latest else None,
                    recorded_at=latest[purpose].recorded_at if purpose in latest else None,
                )
                for purpose in Purpose
            },
            wording_version=CONSENT_WORDING_VERSION,
            wording=CONSENT_WORDINGS[CONSENT_WORDING_VERSION],
            history=[
                ConsentEntryOut(
                    purpose=e.purpose,
                    granted=e.granted,
                    wording_version=e.wording_version,
                    recorded_at=e.recorded_at,
                    source=e.source,
                )
                for e in consents.ledger
            ],
        )


class ConsentsPut(BaseModel):
    """Decisions per purpose, with the wording version that was shown; purposes left out keep their state."""

    model_config = ConfigDict(extra="forbid")

    wording_version: str = Field(examples=[CONSENT_WORDING_VERSION])
    # Strict: a consent is `true` or `false`, never a string or a number read as one.
    purposes: dict[Purpose, StrictBool] = Field(min_length=1, examples=[{"personalization": True, "email": False}])

    @classmethod
    def every_purpose(cls, *, granted: bool) -> ConsentsPut:
        """Return decisions granting (or withdrawing) every purpose, on the current wording."""
        return cls(wording_version=CONSENT_WORDING_VERSION, purposes=dict.fromkeys(Purpose, granted))

    @field_validator("wording_version")
    @classmethod
    def _known_wording(cls, value: str) -> str:
        if value not in CONSENT_WORDINGS:
            raise ValueError(f"unknown wording version {value!r}; the current one is {CONSENT_WORDING_VERSION!r}")
        return value


def consent_changed_data(*, user_id: UUID, entry: ConsentEntry) -> dict[str, Any]:
    """Return the payload of a `consent.changed` event."""
    return {
        "user_id": str(user_id),
        "purpose": entry.purpose.value,
        "granted": entry.granted,
        "wording_version": entry.wording_version,
        "changed_at": entry.recorded_at,
        "source": entry.source.value,
    }
