"""Export and erasure of a person, across every module, and the retention job.

Each module implements the `PersonalData` port (`tipwise.kernel.privacy`) for its tables; the
composition root hands them to `Privacy`, which runs them together:

- `export` reads every module's share in one read transaction and packs one JSON file per
  module, plus a README, into a zip archive;
- `erase` deletes the person's rows in every module, destroys their data key (so every copy of
  their event payloads, in the log, on NATS and in backups, becomes unreadable) and publishes
  `user.deleted`, all in one transaction. The learner applies `user.deleted` after that commit and
  rebuilds the shared models from the log, which no longer reads the person's events.

`Retention` deletes decisions and reactions, and signals from connected calendars, older than
their configured windows.
"""

import io
import json
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tipwise import events
from tipwise.auth import AuthFacade, Principal
from tipwise.integrations import IntegrationsPersonalData
from tipwise.kernel.clock import Clock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import InvalidInput, Unauthorized
from tipwise.kernel.http import problem_responses
from tipwise.kernel.logging import get_logger
from tipwise.kernel.privacy import PersonalData
from tipwise.recommender import RecommenderPersonalData

log = get_logger(__name__)

README = """\
Your Tipwise data
=================

This archive holds everything Tipwise keeps about you, exported on {exported_at}
for account {user_id}. Each file is JSON: an object whose keys are sections, each
a list of records (one per stored row or event).

{files}

Times are ISO 8601 in UTC. Ids are UUIDs. Deleting your account (DELETE /v1/me, or
"Delete my account" on the "Your data" page) removes all of it, and makes the
copies of your events in logs and backups unreadable.
"""

DESCRIPTIONS = {
    "auth": "your account (email, role, when it was created; never the password hash) and sign-in identities",
    "profile": "your preferences and every line of your consent ledger",
    "integrations": "your connected calendars (host and sync status, never the secret address) "
    "and the busy times read from them",
    "recommender": "every tip decided for you (with the context it used and its probabilities) and your reactions",
    "learner": "decisions about you still waiting for a reaction before the learner learns from them",
    "events": "every event about you on the event log, decoded",
}


@dataclass(frozen=True, kw_only=True)
class Erasure:
    """What an erasure removed."""

    user_id: UUID
    rows: dict[str, int]
    seconds: float


class Privacy:
    """Export and erasure over every module's `PersonalData` port."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        ports: Sequence[PersonalData],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        names = [port.name for port in ports]
        if len(set(names)) != len(names):
            raise ValueError(f"two personal-data ports share a name: {names}")
        self._db = db
        self._clock = clock
        # Events last: erasing the key must not drop the `user.deleted` published after it.
        self._ports = sorted(ports, key=lambda port: port.name == "events")
        self._on_commit = on_commit

    def today(self) -> str:
        return self._clock.now().date().isoformat()

    @property
    def ports(self) -> Sequence[PersonalData]:
        return self._ports

    def export(self, *, user_id: UUID) -> bytes:
        """Return a zip archive: `<module>.json` for every module and a README.txt."""
        with self._db.read() as session:
            shares = {port.name: port.export(session, user_id) for port in self._ports}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, share in shares.items():
                archive.writestr(f"{name}.json", json.dumps(share, indent=2, sort_keys=True, ensure_ascii=False))
            files = "\n".join(
                f"- {name}.json: {DESCRIPTIONS.get(name, 'what the ' + name + ' module keeps about you')}"
                for name in shares
            )
            archive.writestr(
                "README.txt", README.format(exported_at=self._clock.now().isoformat(), user_id=user_id, files=files)
            )
        return buffer.getvalue()

    def erase(self, *, user_id: UUID) -> Erasure:
        """Erase the person everywhere in one transaction and publish `user.deleted`."""
        started = time.perf_counter()
        now = self._clock.now()
        with self._db.write() as session:
            rows = {port.name: port.erase(session, user_id) for port in self._ports}
            events.publish(
                session,
                events.Event.create(
                    type=events.USER_DELETED,
                    subject=str(user_id),
                    time=now,
                    message=events.messages.UserDeleted(user_id=str(user_id), deleted_at=events.to_timestamp(now)),
                ),
            )
        if self._on_commit is not None:
            self._on_commit()
        seconds = time.perf_counter() - started
        log.info("person_erased", rows=sum(rows.values()), seconds=round(seconds, 3))
        return Erasure(user_id=user_id, rows=rows, seconds=seconds)


class RetentionSettings(BaseSettings):
    """How long decisions, reactions and signals are kept (`TIPWISE_RETENTION_*`)."""

    model_config = SettingsConfigDict(env_prefix="TIPWISE_RETENTION_", extra="forbid")

    # Decisions (with their context snapshot) and reactions older than this are deleted.
    decision_days: float = Field(default=365.0, gt=0)
    # Signals from connected calendars (busy intervals) that ended longer ago than this are deleted.
    signal_days: float = Field(default=30.0, gt=0)
    # How often the job looks for expired rows.
    interval_hours: float = Field(default=1.0, gt=0)

    @property
    def decision_window(self) -> timedelta:
        return timedelta(days=self.decision_days)

    @property
    def signal_window(self) -> timedelta:
        return timedelta(days=self.signal_days)


class Retention:
    """The periodic job: deletes decisions, reactions and signals older than their windows, once per interval."""

    def __init__(self, *, db: Database, clock: Clock, settings: RetentionSettings) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._last_run: datetime | None = None

    def run(self, now: datetime | None = None) -> int:
        """Delete what is older than its window; return how many rows went."""
        moment = now or self._clock.now()
        cutoff = moment - self._settings.decision_window
        signal_cutoff = moment - self._settings.signal_window
        with self._db.write() as session:
            decisions = RecommenderPersonalData.forget_before(session, cutoff)
            signals = IntegrationsPersonalData.forget_before(session, signal_cutoff)
        self._last_run = moment
        if decisions or signals:
            log.info(
                "retention_deleted",
                rows=decisions,
                before=cutoff.isoformat(),
                signals=signals,
                signals_before=signal_cutoff.isoformat(),
            )
        return decisions + signals

    def __call__(self) -> None:
        """The worker's job: run when the interval has passed since the last run."""
        now = self._clock.now()
        if self._last_run is None or now - self._last_run >= timedelta(hours=self._settings.interval_hours):
            self.run(now)


class ErasureRequest(BaseModel):
    """The confirmation that the caller means to erase their account: its email, typed again."""

    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(description="The account's email address, to confirm the erasure.")


def build_router(privacy: Privacy, auth: AuthFacade, principal: Callable[..., Any]) -> APIRouter:
    """Return the routes `POST /v1/me/export` and `DELETE /v1/me`."""
    router = APIRouter(prefix="/v1/me", tags=["privacy"], responses=problem_responses(401, 422))
    CurrentUser = Annotated[Principal, Depends(principal)]

    @router.post(
        "/export",
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}, "description": "A zip archive of your data."}},
    )
    def export(user: CurrentUser) -> Response:
        """Download everything Tipwise keeps about you: a zip with one JSON file per module and a README."""
        archive = privacy.export(user_id=user.user_id)
        return Response(
            archive,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{export_filename(privacy)}"'},
        )

    @router.delete("", status_code=204, response_class=Response)
    def erase(body: ErasureRequest, user: CurrentUser) -> Response:
        """Delete your account and everything about you, for good; confirm with your account's email.

        Your rows go from every module and your events become unreadable everywhere; the shared
        models are rebuilt without you. Your access token stops working.
        """
        erase_confirmed(privacy, auth, user_id=user.user_id, confirm=body.confirm)
        return Response(status_code=204)

    return router


def erase_confirmed(privacy: Privacy, auth: AuthFacade, *, user_id: UUID, confirm: str) -> Erasure:
    """Erase the person once `confirm` is their account's email; raises InvalidInput naming `confirm`."""
    confirm_erasure(auth, user_id=user_id, confirm=confirm)
    return privacy.erase(user_id=user_id)


def confirm_erasure(auth: AuthFacade, *, user_id: UUID, confirm: str) -> None:
    """Raise InvalidInput naming `confirm` unless it is the account's email (case aside)."""
    account = auth.account(user_id=user_id)
    if account is None:
        raise Unauthorized("the account of this token no longer exists")
    if confirm.strip().casefold() != account.email.casefold():
        raise InvalidInput(
            "confirm: type your account's email address to confirm the deletion",
            extra={"field": "confirm"},
        )


def export_filename(privacy: Privacy) -> str:
    return f"tipwise-export-{privacy.today()}.zip"
