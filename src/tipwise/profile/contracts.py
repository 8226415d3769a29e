"""Public DTOs of the profile module."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, field_validator

from tipwise.advice import Category

DEFAULT_TIMEZONE = "UTC"


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


@dataclass(frozen=True, kw_only=True)
class Preferences:
    """What a person has told Tipwise about how they want tips."""

    user_id: UUID
    timezone: str = DEFAULT_TIMEZONE
    muted_categories: frozenset[Category] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class PreferencesOut(BaseModel):
    timezone: str
    muted_categories: list[Category]

    @classmethod
    def of(cls, prefs: Preferences) -> PreferencesOut:
        return cls(timezone=prefs.timezone, muted_categories=sorted(prefs.muted_categories))


class PreferencesPatch(BaseModel):
    """Fields to change; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    muted_categories: list[Category] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else validate_timezone(value)
