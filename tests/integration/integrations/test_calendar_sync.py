"""Calendar feeds synced from a real HTTP server, gated by consent, on SQLite and PostgreSQL.

The issue's promise, as a test: after a withdrawal, the next decision's
`context_snapshot` holds none of the calendar's features, and the connector
stops syncing (the feed's server gets no further request).
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import ContainerFactory
from tests.support.calendar_feed import CalendarFeed, calendar_feed
from tests.support.calendars import WORK_BUSY, WORK_CALENDAR
from tests.support.consents import registered
from tipwise import events
from tipwise.app import create_app
from tipwise.bootstrap import Container
from tipwise.integrations import IntegrationsSettings, SyncReport, SyncStatus
from tipwise.integrations.models import ConnectionRow, SignalRow
from tipwise.kernel.clock import FakeClock
from tipwise.privacy import RetentionSettings
from tipwise.profile import CONSENT_WORDING_VERSION, ConsentsPut, Purpose
from tipwise.recommender.domain.features import CALENDAR_FEATURES, FEATURE_PURPOSES
from tipwise.recommender.models import TipInstanceRow

PASSWORD = "a long password"
LOCAL_FEEDS = IntegrationsSettings(allow_private_addresses=True)


@pytest.fixture
def feed() -> Iterator[CalendarFeed]:
    with calendar_feed(WORK_CALENDAR) as served:
        yield served


@pytest.fixture
def container(make_container: ContainerFactory, database_url: str) -> Container:
    return make_container(database_url, integrations_settings=LOCAL_FEEDS)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as test_client:
        yield test_client


def _headers(container: Container, email: str) -> dict[str, str]:
    tokens = container.auth.login(email=email, password=PASSWORD)
    return {"Authorization": f"Bearer {tokens.access_token}"}


def _person(container: Container, email: str = "cal@example.com") -> tuple[UUID, dict[str, str]]:
    return registered(container, email), _headers(container, email)


def _signals(container: Container, user: UUID | None = None) -> list[tuple[Any, Any]]:
    with container.db.read() as session:
        query = select(SignalRow.start_at, SignalRow.end_at).order_by(SignalRow.start_at)
        if user is not None:
            query = query.where(SignalRow.user_id == user)
        return [(row.start_at, row.end_at) for row in session.execute(query)]


def _snapshot_features(container: Container, tip_instance_id: str) -> set[str]:
    with container.db.read() as session:
        row = session.get(TipInstanceRow, UUID(tip_instance_id))
        assert row is not None
        snapshot = row.context_snapshot
    names = set(snapshot["shared"])
    for features in snapshot["actions"].values():
        names |= set(features)
    return names


def _run_syncer(container: Container) -> None:
    """Run one round of the calendar syncer's thread, here in the test's thread."""
    assert container.syncer is not None
    container.syncer.run_once()


def _consent(client: TestClient, headers: dict[str, str], *, granted: bool) -> None:
    body = {"wording_version": CONSENT_WORDING_VERSION, "purposes": {Purpose.CALENDAR_SIGNALS: granted}}
    response = client.put("/v1/me/consents", headers=headers, json=body)
    assert response.status_code == 200, response.text


class TestConnecting:
    def test_adding_a_feed_reads_it_and_stores_the_busy_intervals(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        user, headers = _person(container)
        response = client.post("/v1/integrations", headers=headers, json={"url": feed.url})
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["kind"], body["label"], body["status"], body["busy_intervals"]) == ("ical", "127.0.0.1", "ok", 4)
        assert "url" not in body
        assert feed.url not in response.text
        assert _signals(container, user) == WORK_BUSY
        [listed] = client.get("/v1/integrations", headers=headers).json()
        assert listed["id"] == body["id"]
        assert listed["busy_intervals"] == 4
        # The address is stored sealed, never in clear.
        with container.db.read() as session:
            [secret] = session.scalars(select(ConnectionRow.secret)).all()
        assert b"secret-token" not in secret
        assert feed.url.encode() not in secret

    def test_the_read_publishes_a_signal_received_event_with_the_intervals(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        container.worker.run_once(jobs=False)
        [signal] = [e for e in container.embedded_log().read() if e.type == events.SIGNAL_RECEIVED]
        data = signal.data()
        assert (signal.subject, data["source"], data["kind"]) == (str(user), "calendar", "busy")
        intervals = [(i["start"], i["end"]) for i in data["values"]["intervals"]]
        assert intervals == [(s.isoformat(), e.isoformat()) for s, e in WORK_BUSY]

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (lambda f: setattr(f, "body", b"<html><body>Please sign in</body></html>"), "BEGIN:VCALENDAR"),
            (lambda f: setattr(f, "status", 404), "answered HTTP 404"),
        ],
    )
    def test_a_bad_feed_is_refused_with_a_clear_error_and_nothing_is_stored(
        self, client: TestClient, container: Container, feed: CalendarFeed, change: Any, message: str
    ) -> None:
        _user, headers = _person(container)
        change(feed)
        response = client.post("/v1/integrations", headers=headers, json={"url": feed.url})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["code"] == "invalid_input"
        assert problem["field"] == "url"
        assert message in problem["detail"]
        assert "secret-token" not in response.text
        assert client.get("/v1/integrations", headers=headers).json() == []

    def test_an_address_that_is_not_http_or_has_nothing_listening_is_refused(
        self, client: TestClient, container: Container
    ) -> None:
        _user, headers = _person(container)
        ftp = client.post("/v1/integrations", headers=headers, json={"url": "ftp://example.com/cal.ics"})
        assert ftp.status_code == 422
        assert "https://" in ftp.json()["detail"]
        closed = client.post("/v1/integrations", headers=headers, json={"url": "http://127.0.0.1:9/cal.ics"})
        assert closed.status_code == 422
        assert "could not read the feed from 127.0.0.1" in closed.json()["detail"]

    def test_without_consent_no_request_is_made_and_the_answer_says_which_consent(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        registered(container, "no@example.com", granted=False)
        headers = _headers(container, "no@example.com")
        response = client.post("/v1/integrations", headers=headers, json={"url": feed.url})
        assert response.status_code == 409
        assert (response.json()["code"], response.json()["purpose"]) == ("consent_required", "calendar_signals")
        assert feed.requests == []

    def test_removing_a_feed_deletes_its_address_and_signals(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        _user, headers = _person(container)
        added = client.post("/v1/integrations", headers=headers, json={"url": feed.url}).json()
        assert client.delete(f"/v1/integrations/{added['id']}", headers=headers).status_code == 204
        assert client.get("/v1/integrations", headers=headers).json() == []
        assert _signals(container) == []
        assert client.delete(f"/v1/integrations/{added['id']}", headers=headers).status_code == 404

    def test_the_busy_times_read_in_the_callers_transaction_are_those_read_alone(
        self, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        user, _ = _person(container)
        start = clock.now()
        assert container.integrations.busy_intervals(user_id=user, start=start, end=start + timedelta(days=2)) is None
        container.integrations.add_calendar(user_id=user, url=feed.url)
        alone = container.integrations.busy_intervals(user_id=user, start=start, end=start + timedelta(days=2))
        with container.db.read_connection() as connection:
            shared = container.integrations.busy_intervals(
                user_id=user, start=start, end=start + timedelta(days=2), connection=connection
            )
        assert alone == shared == WORK_BUSY


class TestPrivateAddresses:
    def test_by_default_a_feed_on_a_local_address_is_refused_before_any_request(
        self, make_container: ContainerFactory, feed: CalendarFeed
    ) -> None:
        container = make_container()
        _user, headers = _person(container)
        with TestClient(create_app(container)) as client:
            response = client.post("/v1/integrations", headers=headers, json={"url": feed.url})
        assert response.status_code == 422
        assert "private or local network" in response.json()["detail"]
        assert feed.requests == []


class TestSyncing:
    def test_an_unchanged_feed_answers_304_and_the_stored_intervals_stand(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        container.worker.run_once(jobs=False)
        clock.advance(container.integrations.settings.sync_interval)
        headers = _headers(container, "cal@example.com")  # the access token expired meanwhile

        report = container.integrations.sync()

        assert (report.read, report.not_modified) == (0, 1)
        assert feed.requests[-1].headers["if-none-match"] == feed.etag
        assert feed.answers == [200, 304]
        assert _signals(container, user) == WORK_BUSY
        [listed] = client.get("/v1/integrations", headers=headers).json()
        assert listed["status"] == SyncStatus.NOT_MODIFIED
        # A 304 writes no signal event: nothing new was observed.
        container.worker.run_once(jobs=False)
        assert [e.type for e in container.embedded_log().read()].count(events.SIGNAL_RECEIVED) == 1

    def test_a_changed_feed_replaces_the_upcoming_intervals(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        feed.body = WORK_CALENDAR.replace(b"RRULE:FREQ=DAILY\r\n", b"")  # the standup no longer repeats
        assert container.integrations.sync() == SyncReport()  # not due yet: no request
        assert len(feed.requests) == 1
        clock.advance(timedelta(hours=1))  # 10:00 UTC: Monday's standup has ended

        assert container.integrations.sync().read == 1

        # Monday's standup ended before the read and stays (history, until the retention window);
        # Tuesday's is gone.
        assert _signals(container, user) == WORK_BUSY[:3]

    def test_near_the_end_of_the_read_horizon_the_feed_is_read_in_full(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        _user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        # The first read expanded 48 hours; 30 hours later only 18 are left, under the 24-hour lookahead.
        clock.advance(timedelta(hours=30))
        assert container.integrations.sync().read == 1
        assert "if-none-match" not in feed.requests[-1].headers

    def test_the_syncer_reads_due_feeds_and_the_worker_relays_their_events(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        _user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        _run_syncer(container)
        assert len(feed.requests) == 1
        feed.body = WORK_CALENDAR.replace(b"RRULE:FREQ=DAILY\r\n", b"")
        clock.advance(container.integrations.settings.sync_interval)
        _run_syncer(container)
        assert len(feed.requests) == 2
        container.worker.run_once()
        assert [e.type for e in container.embedded_log().read()].count(events.SIGNAL_RECEIVED) == 2

    def test_a_failing_feed_keeps_its_intervals_and_reports_the_error(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        feed.status = 500
        clock.advance(container.integrations.settings.sync_interval)
        headers = _headers(container, "cal@example.com")  # the access token expired meanwhile
        assert container.integrations.sync().failed == 1
        [listed] = client.get("/v1/integrations", headers=headers).json()
        assert (listed["status"], listed["last_error"]) == (
            "error",
            "127.0.0.1 answered HTTP 500 instead of the calendar",
        )
        assert _signals(container, user) == WORK_BUSY


class TestPurposeBinding:
    @pytest.mark.parametrize("asked", ["sync", "async"])
    @pytest.mark.parametrize("withdrawn", [Purpose.CALENDAR_SIGNALS, Purpose.PERSONALIZATION, Purpose.MODEL_TRAINING])
    def test_a_withdrawal_committed_while_a_decision_is_planned_applies_to_that_decision(
        self,
        make_container: ContainerFactory,
        database_url: str,
        feed: CalendarFeed,
        withdrawn: Purpose,
        asked: str,
    ) -> None:
        withdraw: list[tuple[UUID, Purpose]] = []
        built: list[Container] = []

        def seed() -> int:
            # Drawn after the plan read the consents and the calendar, before it is recorded.
            while withdraw:
                user_id, purpose = withdraw.pop()
                built[0].profile.record_consents(
                    user_id=user_id,
                    decisions=ConsentsPut(wording_version=CONSENT_WORDING_VERSION, purposes={purpose: False}),
                )
            return 7

        seeds: Callable[[], int] = seed
        container = make_container(database_url, integrations_settings=LOCAL_FEEDS, seeds=seeds)
        built.append(container)
        with TestClient(create_app(container)) as client:
            user, headers = _person(container)
            assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        container.worker.run_once()
        before = container.recommender.next_tip(user_id=user)
        assert before is not None
        assert "busy_now" in _snapshot_features(container, str(before.tip_instance_id))

        withdraw.append((user, withdrawn))
        if asked == "sync":
            decision = container.recommender.next_tip(user_id=user)
        else:
            decision = asyncio.run(container.recommender.next_tip_async(user_id=user))

        assert not withdraw, "the withdrawal ran between the plan and its record"
        assert decision is not None
        with container.db.read() as session:
            row = session.get(TipInstanceRow, decision.tip_instance_id)
            assert row is not None
            logged = set(row.context_snapshot["purposes"])
        assert withdrawn.value not in logged
        features = _snapshot_features(container, str(decision.tip_instance_id))
        assert {n for n in features if FEATURE_PURPOSES[n] is withdrawn} == set()
        if withdrawn is Purpose.CALENDAR_SIGNALS:
            assert not features & set(CALENDAR_FEATURES)

    def test_after_a_withdrawal_no_calendar_feature_is_used_and_the_feed_is_no_longer_read(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        container.worker.run_once()

        with_consent = client.post("/v1/tips/next", headers=headers).json()
        features = _snapshot_features(container, with_consent["tip_instance_id"])
        # 09:00 UTC on Monday: inside the standup; the next event (the New York call) is 7 hours away.
        assert {"busy_now", "minutes_to_next_event"} <= features
        with container.db.read() as session:
            row = session.get(TipInstanceRow, UUID(with_consent["tip_instance_id"]))
            assert row is not None
            assert row.context_snapshot["shared"]["busy_now"] == 1.0
        requests_before = len(feed.requests)

        _consent(client, headers, granted=False)
        clock.advance(timedelta(hours=2))
        headers = _headers(container, "cal@example.com")  # the access token expired meanwhile
        without = client.post("/v1/tips/next", headers=headers).json()

        features = _snapshot_features(container, without["tip_instance_id"])
        assert features, "the snapshot still holds the context and tip features"
        assert not features & set(CALENDAR_FEATURES)
        assert {n for n in features if FEATURE_PURPOSES[n] is Purpose.CALENDAR_SIGNALS} == set()
        # The sync job runs (the feed is long due) and sends the feed's server nothing.
        clock.advance(container.integrations.settings.sync_interval * 4)
        headers = _headers(container, "cal@example.com")  # the access token expired meanwhile
        container.worker.run_once()
        _run_syncer(container)
        report = container.integrations.sync(everything=True)
        assert report.paused == 1
        assert report.read + report.not_modified + report.failed == 0
        assert len(feed.requests) == requests_before
        # The withdrawal deleted the stored signals, and the connection shows it is paused.
        assert _signals(container, user) == []
        [listed] = client.get("/v1/integrations", headers=headers).json()
        assert (listed["status"], listed["busy_intervals"]) == ("paused", 0)

    def test_the_consent_event_deletes_the_signals_before_any_sync(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        user, headers = _person(container)
        other, other_headers = _person(container, "other@example.com")
        for who in (headers, other_headers):
            assert client.post("/v1/integrations", headers=who, json={"url": feed.url}).status_code == 201
        _consent(client, headers, granted=False)
        container.worker.run_once(jobs=False)  # dispatch only: no sync job runs
        assert _signals(container, user) == []
        assert _signals(container, other) == WORK_BUSY

    def test_granting_again_reads_the_feed_in_full_at_the_next_round(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        _consent(client, headers, granted=False)
        container.worker.run_once()
        _consent(client, headers, granted=True)
        container.worker.run_once()  # the consumer sets the paused feed due
        _run_syncer(container)
        assert feed.answers == [200, 200]
        assert "if-none-match" not in feed.requests[-1].headers
        assert _signals(container, user) == WORK_BUSY
        decision = client.post("/v1/tips/next", headers=headers).json()
        assert "busy_now" in _snapshot_features(container, decision["tip_instance_id"])

    def test_granting_again_after_decisions_without_consent_brings_the_calendar_back_at_once(
        self, client: TestClient, container: Container, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        # The decision after the withdrawal is planned without reading the calendar; the one after
        # the new grant is planned on the consents last read (no calendar), then planned again in
        # its write transaction, where the consents are read afresh, with the calendar read.
        _user, headers = _person(container)
        assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
        _consent(client, headers, granted=False)
        without = client.post("/v1/tips/next", headers=headers).json()
        assert not _snapshot_features(container, without["tip_instance_id"]) & set(CALENDAR_FEATURES)
        _consent(client, headers, granted=True)
        container.worker.run_once()  # the withdrawal deleted the signals; the grant sets the feed due
        _run_syncer(container)
        clock.advance(timedelta(hours=2))
        headers = _headers(container, "cal@example.com")  # the access token expired meanwhile
        again = client.post("/v1/tips/next", headers=headers).json()
        assert {"minutes_to_next_event"} <= _snapshot_features(container, again["tip_instance_id"])

    def test_a_person_without_a_calendar_gets_no_calendar_feature(
        self, client: TestClient, container: Container
    ) -> None:
        _user, headers = _person(container)
        decision = client.post("/v1/tips/next", headers=headers).json()
        assert not _snapshot_features(container, decision["tip_instance_id"]) & set(CALENDAR_FEATURES)


class TestRetentionAndPrivacy:
    def test_signals_older_than_the_window_are_purged_by_the_retention_job(
        self, make_container: ContainerFactory, database_url: str, feed: CalendarFeed, clock: FakeClock
    ) -> None:
        container = make_container(
            database_url,
            integrations_settings=LOCAL_FEEDS,
            retention_settings=RetentionSettings(signal_days=3),
        )
        user = registered(container, "old@example.com")
        container.integrations.add_calendar(user_id=user, url=feed.url)
        clock.advance(timedelta(days=4))  # Monday's intervals ended 4 days ago, Tuesday's standup 3 days minus 30 min
        assert container.retention.run() == 3
        assert _signals(container, user) == WORK_BUSY[3:]

    def test_the_export_lists_the_connection_without_its_address_and_erasure_removes_it(
        self, client: TestClient, container: Container, feed: CalendarFeed
    ) -> None:
        user, headers = _person(container)
        _other, other_headers = _person(container, "keep@example.com")
        for who in (headers, other_headers):
            assert client.post("/v1/integrations", headers=who, json={"url": feed.url}).status_code == 201

        response = client.post("/v1/me/export", headers=headers)
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            share = json.loads(archive.read("integrations.json"))
            readme = archive.read("README.txt").decode()
        [connection] = share["connections"]
        assert (connection["label"], connection["user_id"], connection["status"]) == ("127.0.0.1", str(user), "ok")
        assert "secret" not in connection
        assert "secret-token" not in json.dumps(share)
        assert len(share["signals"]) == 4
        assert "integrations.json" in readme

        erased = client.request("DELETE", "/v1/me", headers=headers, json={"confirm": "cal@example.com"})
        assert erased.status_code == 204
        with container.db.read() as session:
            left = session.execute(select(ConnectionRow.user_id, func.count()).group_by(ConnectionRow.user_id)).all()
        assert [row[0] for row in left] == [_other]
        assert _signals(container, user) == []
        assert len(_signals(container, _other)) == 4
