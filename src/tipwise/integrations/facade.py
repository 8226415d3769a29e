"""The integrations module as the gateway, the recommender and the worker see it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from uuid import UUID

from sqlalchemy import Connection

from tipwise.integrations import repository, service
from tipwise.integrations.contracts import ConnectionKind, ConsentRequired, IntegrationOut, SyncReport, SyncStatus
from tipwise.integrations.domain.calendar import BusyInterval, NotACalendar, busy_intervals
from tipwise.integrations.feeds import FeedError, FeedReader, Fetched, host_of, normalize_url
from tipwise.integrations.models import ConnectionRow
from tipwise.integrations.settings import IntegrationsSettings
from tipwise.integrations.vault import Vault, VaultError
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import InvalidInput
from tipwise.kernel.ids import new_id
from tipwise.kernel.logging import get_logger
from tipwise.profile import ConsentPort, Purpose

log = get_logger(__name__)

# Feeds read per sync round at most; the rest are due in the next round.
ROUND_SIZE = 50


def _context(connection_id: UUID, user_id: UUID) -> bytes:
    return connection_id.bytes + user_id.bytes


class IntegrationsFacade:
    """Connected calendars: add, list, remove, sync; and their busy times for decisions.

    Purpose binding: before every read of a feed, the person's consent to
    calendar signals is asked afresh (`ConsentPort`); without it no request
    is made, and their calendar signals are deleted.
    """

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        consent: ConsentPort,
        zone_of: Callable[[UUID], tzinfo],
        vault: Vault,
        reader: FeedReader,
        settings: IntegrationsSettings,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._consent = consent
        self._zone_of = zone_of
        self._vault = vault
        self._reader = reader
        self._settings = settings
        self._on_commit = on_commit

    @property
    def settings(self) -> IntegrationsSettings:
        return self._settings

    # -- the person's connections -------------------------------------------------

    def connections(self, *, user_id: UUID) -> list[IntegrationOut]:
        with self._db.read() as session:
            return service.describe(session, user_id=user_id, now=self._clock.now())

    def add_calendar(self, *, user_id: UUID, url: str) -> IntegrationOut:
        """Connect an iCal feed after reading it once; raise ConsentRequired or InvalidInput naming `url`."""
        if not self._consent.allows(user_id=user_id, purpose=Purpose.CALENDAR_SIGNALS):
            raise ConsentRequired(
                "connecting a calendar needs your consent to calendar signals (PUT /v1/me/consents)",
                extra={"purpose": Purpose.CALENDAR_SIGNALS.value},
            )
        try:
            address = normalize_url(url)
            now = self._clock.now()
            fetched = self._reader.fetch(address)
            intervals = self._expand(fetched, user_id=user_id, now=now)
        except (FeedError, NotACalendar) as exc:
            raise InvalidInput(f"url: {exc}", extra={"field": "url"}) from None
        connection_id = new_id()
        row = ConnectionRow(
            id=connection_id,
            user_id=user_id,
            kind=ConnectionKind.ICAL.value,
            label=host_of(address),
            secret=self._vault.seal(address, context=_context(connection_id, user_id)),
            added_at=now,
            next_sync_at=now,
            status=SyncStatus.OK.value,
        )
        with self._db.write() as session:
            repository.add_connection(session, row)
            service.store_read(
                session,
                row=row,
                fetched=fetched,
                intervals=intervals,
                now=now,
                covered_until=now + self._settings.horizon,
                next_sync_at=now + self._settings.sync_interval,
            )
            result = service.out(row, busy=len(intervals))
        self._on_commit()
        log.info("calendar_connected", host=row.label, intervals=len(intervals))
        return result

    def remove(self, *, user_id: UUID, integration_id: UUID) -> None:
        """Disconnect a calendar: its sealed address and every signal from it are deleted."""
        with self._db.write() as session:
            service.owned(session, user_id=user_id, connection_id=integration_id)
            repository.delete_connection(session, integration_id)

    # -- decisions ------------------------------------------------------------------

    def busy_intervals(
        self, *, user_id: UUID, start: datetime, end: datetime, connection: Connection | None = None
    ) -> list[tuple[datetime, datetime]] | None:
        """Return the person's busy intervals overlapping [start, end); None when no calendar has been read.

        The caller (the recommender) asks only with the person's consent to
        calendar signals; withdrawn consent deletes the signals besides. With
        `connection` the read runs in the caller's read transaction (a decision
        reads the consents and the calendar in one), otherwise in one of its own.
        """
        with self._db.read_connection(within=connection) as reading:
            return repository.busy(reading, user_id=user_id, start=start, end=end)

    # -- syncing --------------------------------------------------------------------

    def sync_due(self) -> int:
        """The worker's job: read the feeds that are due; return how many events it published."""
        return self.sync().read

    def sync(self, *, everything: bool = False) -> SyncReport:
        """Read every due feed (`everything`: every feed now), each only with consent; return the tally."""
        now = self._clock.now()
        with self._db.read() as session:
            rows = (
                repository.all_connections(session)
                if everything
                else repository.due(session, now=now, limit=ROUND_SIZE)
            )
        report = SyncReport()
        for row in rows:
            outcome = self._sync_one(row, now=now)
            setattr(report, outcome, getattr(report, outcome) + 1)
        if report.read:
            self._on_commit()
        return report

    def _sync_one(self, row: ConnectionRow, *, now: datetime) -> str:
        next_sync_at = now + self._settings.sync_interval
        if not self._consent.allows(user_id=row.user_id, purpose=Purpose.CALENDAR_SIGNALS):
            with self._db.write() as session:
                service.pause(session, user_id=row.user_id, next_sync_at=next_sync_at)
            return "paused"
        conditional = row.covered_until is not None and row.covered_until - now >= self._settings.lookahead
        try:
            address = self._vault.open(row.secret, context=_context(row.id, row.user_id))
            fetched = self._reader.fetch(
                address,
                etag=row.etag if conditional else None,
                last_modified=row.last_modified if conditional else None,
            )
            intervals = None if fetched.body is None else self._expand(fetched, user_id=row.user_id, now=now)
        except (VaultError, FeedError, NotACalendar) as exc:
            with self._db.write() as session:
                current = repository.connection(session, row.id)
                if current is not None:
                    service.store_failure(session, row=current, error=str(exc), next_sync_at=next_sync_at)
            log.warning("calendar_sync_failed", host=row.label, reason=str(exc))
            return "failed"
        # Consent may have been withdrawn while the feed was read: store nothing then.
        if not self._consent.allows(user_id=row.user_id, purpose=Purpose.CALENDAR_SIGNALS):
            return "paused"
        with self._db.write() as session:
            current = repository.connection(session, row.id)
            if current is None:  # removed while it was read
                return "failed"
            if intervals is None:
                service.store_not_modified(session, row=current, fetched=fetched, now=now, next_sync_at=next_sync_at)
                return "not_modified"
            service.store_read(
                session,
                row=current,
                fetched=fetched,
                intervals=intervals,
                now=now,
                covered_until=now + self._settings.horizon,
                next_sync_at=next_sync_at,
            )
        return "read"

    def _expand(self, fetched: Fetched, *, user_id: UUID, now: datetime) -> list[BusyInterval]:
        if fetched.body is None:
            raise FeedError("the feed answered 'not modified' to a first read")
        return busy_intervals(fetched.body, start=now, end=now + self._settings.horizon, zone=self._zone_of(user_id))
