"""Use cases of the profile module: preferences and the consent ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Connection

from tipwise import events
from tipwise.advice import Category
from tipwise.kernel.db import ReadSession, WriteSession
from tipwise.profile import repository
from tipwise.profile.contracts import (
    DEFAULT_TIMEZONE,
    Channel,
    ConsentEntry,
    Consents,
    ConsentSource,
    ConsentsPut,
    Preferences,
    PreferencesOut,
    PreferencesPatch,
    Purpose,
    TimeWindow,
    Weekday,
    consent_changed_data,
)
from tipwise.profile.models import ConsentRow, PreferencesRow


def preferences(session: ReadSession | WriteSession | Connection, user_id: UUID) -> Preferences:
    """Return the person's preferences, defaults when they have set none."""
    row = (
        repository.preferences_row(session, user_id)
        if isinstance(session, Connection)
        else repository.get(session, user_id)
    )
    return _dto(row) if row else Preferences(user_id=user_id)


def update_preferences(session: WriteSession, *, user_id: UUID, patch: PreferencesPatch, now: datetime) -> Preferences:
    """Apply `patch`; publish `preferences.changed` when something changed."""
    row = repository.get(session, user_id)
    if row is None:
        row = PreferencesRow(user_id=user_id, timezone=DEFAULT_TIMEZONE, muted_categories=[], updated_at=now)
        repository.add(session, row)
    before = _dto(row)
    if patch.timezone is not None:
        row.timezone = patch.timezone
    if patch.muted_categories is not None:
        row.muted_categories = sorted({c.value for c in patch.muted_categories})
    if patch.active_hours is not None:
        row.active_hours = {
            day.value: sorted([w.window().start, w.window().end] for w in windows)
            for day, windows in patch.active_hours.items()
        }
    if patch.quiet_hours is not None:
        window = patch.quiet_hours.window()
        row.quiet_start, row.quiet_end = window.start, window.end
    elif patch.clears("quiet_hours"):
        row.quiet_start = row.quiet_end = None
    if patch.frequency_cap_per_day is not None or patch.clears("frequency_cap_per_day"):
        row.frequency_cap_per_day = patch.frequency_cap_per_day
    if patch.channels is not None:
        merged = dict(row.channels or {})
        merged.update({category.value: sorted(c.value for c in chans) for category, chans in patch.channels.items()})
        row.channels = merged
    row.updated_at = now
    after = _dto(row)
    changed = sorted(name for name in _COMPARED if getattr(before, name) != getattr(after, name))
    if changed:
        events.publish(
            session,
            events.Event.create(
                type=events.PREFERENCES_CHANGED,
                subject=str(user_id),
                time=now,
                data={
                    "user_id": str(user_id),
                    "changed": changed,
                    "preferences": PreferencesOut.of(after).model_dump(mode="json"),
                },
            ),
        )
    return after


_COMPARED = (
    "timezone",
    "muted_categories",
    "active_hours",
    "quiet_hours",
    "frequency_cap_per_day",
    "channels",
)


class _PreferencesColumns(Protocol):
    """A preferences row: the ORM entity, or a Core row of its table."""

    @property
    def user_id(self) -> UUID: ...
    @property
    def timezone(self) -> str: ...
    @property
    def muted_categories(self) -> list[str]: ...
    @property
    def active_hours(self) -> dict[str, Any] | None: ...
    @property
    def quiet_start(self) -> int | None: ...
    @property
    def quiet_end(self) -> int | None: ...
    @property
    def frequency_cap_per_day(self) -> int | None: ...
    @property
    def channels(self) -> dict[str, Any] | None: ...


def _dto(row: _PreferencesColumns) -> Preferences:
    quiet = (
        TimeWindow(start=row.quiet_start, end=row.quiet_end)
        if row.quiet_start is not None and row.quiet_end is not None
        else None
    )
    return Preferences(
        user_id=row.user_id,
        timezone=row.timezone,
        muted_categories=frozenset(Category(c) for c in row.muted_categories),
        active_hours={
            Weekday(day): tuple(TimeWindow(start=start, end=end) for start, end in windows)
            for day, windows in (row.active_hours or {}).items()
        },
        quiet_hours=quiet,
        frequency_cap_per_day=row.frequency_cap_per_day,
        channels={
            Category(category): frozenset(Channel(c) for c in chans) for category, chans in (row.channels or {}).items()
        },
    )


# -- consents ---------------------------------------------------------------------


def consents(session: ReadSession | WriteSession, user_id: UUID) -> Consents:
    return Consents(user_id=user_id, ledger=tuple(_entry(row) for row in repository.consent_ledger(session, user_id)))


def granted(connection: Connection | ReadSession, user_id: UUID) -> frozenset[Purpose]:
    """Return the purposes the person grants now: the latest ledger line per purpose wins."""
    latest = dict(repository.grants(connection, user_id))
    return frozenset(Purpose(purpose) for purpose, yes in latest.items() if yes)


def record_consents(
    session: WriteSession, *, user_id: UUID, decisions: ConsentsPut, source: ConsentSource, now: datetime
) -> Consents:
    """Append a ledger line, and publish `consent.changed`, for each purpose whose state or wording changed.

    Sending the same decisions again appends nothing, so a retried PUT is harmless.
    """
    latest = consents(session, user_id).latest
    for purpose in Purpose:  # a stable order, whatever order the request used
        if purpose not in decisions.purposes:
            continue
        granted = decisions.purposes[purpose]
        current = latest.get(purpose)
        if current is not None and current.granted == granted and current.wording_version == decisions.wording_version:
            continue
        entry = ConsentEntry(
            purpose=purpose, granted=granted, wording_version=decisions.wording_version, recorded_at=now, source=source
        )
        repository.append_consent(
            session,
            ConsentRow(
                user_id=user_id,
                purpose=purpose.value,
                granted=granted,
                wording_version=entry.wording_version,
                source=source.value,
                recorded_at=now,
            ),
        )
        events.publish(
            session,
            events.Event.create(
                type=events.CONSENT_CHANGED,
                subject=str(user_id),
                time=now,
                data=consent_changed_data(user_id=user_id, entry=entry),
            ),
        )
    return consents(session, user_id)


def _entry(row: ConsentRow) -> ConsentEntry:
    return ConsentEntry(
        purpose=Purpose(row.purpose),
        granted=row.granted,
        wording_version=row.wording_version,
        recorded_at=row.recorded_at,
        source=ConsentSource(row.source),
    )
