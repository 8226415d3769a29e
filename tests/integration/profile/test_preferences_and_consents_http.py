"""Preferences and the consent ledger over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import ContainerFactory
from tests.e2e.helpers import PASSWORD, sign_up
from tipwise import events
from tipwise.app import create_app
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.profile import CONSENT_WORDING_VERSION, CONSENT_WORDINGS, Purpose
from tipwise.profile.models import ConsentRow

NEXT_WORDING = "2027-01-15"


@pytest.fixture
def container(make_container: ContainerFactory, database_url: str) -> Container:
    return make_container(database_url)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as test_client:
        yield test_client


def _subject(container: Container, email: str) -> str:
    """Return the account's id as events name it."""
    return str(container.auth.authenticate(email=email, password=PASSWORD).id)


class TestPreferences:
    def test_every_preference_round_trips_and_a_change_emits_preferences_changed(
        self, client: TestClient, container: Container
    ) -> None:
        headers = sign_up(client, "week@example.com")
        body = {
            "timezone": "Europe/Paris",
            "active_hours": {
                "mon": [{"start": "07:30", "end": "12:00"}, {"start": "13:00", "end": "24:00"}],
                "sun": [],
            },
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "frequency_cap_per_day": 3,
            "channels": {"sleep": ["push", "in_app"], "finance": ["email"]},
        }
        patched = client.patch("/v1/me/preferences", headers=headers, json=body)
        assert patched.status_code == 200, patched.text
        stored = client.get("/v1/me/preferences", headers=headers).json()
        assert stored["timezone"] == "Europe/Paris"
        assert stored["active_hours"] == {
            "mon": [{"start": "07:30", "end": "12:00"}, {"start": "13:00", "end": "24:00"}],
            "sun": [],
        }
        assert stored["quiet_hours"] == {"start": "22:00", "end": "07:00"}
        assert stored["frequency_cap_per_day"] == 3
        assert stored["channels"]["sleep"] == ["in_app", "push"]
        assert stored["channels"]["finance"] == ["email"]
        assert stored["channels"]["movement"] == ["in_app"]

        # The facade the notifier reads applies them (Paris local time).
        subject = _subject(container, "week@example.com")
        prefs = container.profile.preferences(user_id=UUID(subject))
        assert prefs.frequency_cap_per_day == 3
        assert prefs.is_quiet(datetime(2026, 3, 2, 23, 30, tzinfo=prefs.zone))

        container.worker.run_once(jobs=False)
        changed = [e for e in container.embedded_log().events_about(subject) if e.type == "preferences.changed"]
        assert len(changed) == 1
        assert changed[0].data()["changed"] == [
            "active_hours",
            "channels",
            "frequency_cap_per_day",
            "quiet_hours",
            "timezone",
        ]
        assert changed[0].data()["preferences"]["quiet_hours"] == {"start": "22:00", "end": "07:00"}

        # null clears the nullable fields; fields left out keep their value; no change, no event.
        cleared = client.patch(
            "/v1/me/preferences", headers=headers, json={"quiet_hours": None, "frequency_cap_per_day": None}
        ).json()
        assert cleared["quiet_hours"] is None
        assert cleared["frequency_cap_per_day"] is None
        assert cleared["timezone"] == "Europe/Paris"
        client.patch("/v1/me/preferences", headers=headers, json={"timezone": "Europe/Paris"})
        container.worker.run_once(jobs=False)
        types = [e.type for e in container.embedded_log().events_about(subject)]
        assert types.count(events.PREFERENCES_CHANGED) == 2

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"timezone": "Mars/Olympus"}, "body.timezone"),
            ({"quiet_hours": {"start": "23:00", "end": "23:00"}}, "body.quiet_hours"),
            ({"quiet_hours": {"start": "00:00", "end": "24:00"}}, "body.quiet_hours.end"),
            ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "body.quiet_hours.start"),
            ({"frequency_cap_per_day": -1}, "body.frequency_cap_per_day"),
            ({"active_hours": {"mon": [{"start": "18:00", "end": "09:00"}]}}, "body.active_hours.mon.0"),
            (
                {"active_hours": {"tue": [{"start": "08:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]}},
                "body.active_hours",
            ),
            ({"active_hours": {"someday": []}}, "body.active_hours.someday.[key]"),
            ({"channels": {"sleep": ["pigeon"]}}, "body.channels.sleep.0"),
            ({"channels": {"sleep": ["push", "push"]}}, "body.channels"),
            ({"muted_categories": ["astrology"]}, "body.muted_categories.0"),
        ],
    )
    def test_an_invalid_value_is_a_422_naming_the_field_and_changes_nothing(
        self, client: TestClient, body: dict[str, Any], field: str
    ) -> None:
        headers = sign_up(client, "strict@example.com")
        before = client.get("/v1/me/preferences", headers=headers).json()
        response = client.patch("/v1/me/preferences", headers=headers, json=body)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["code"] == "invalid_input"
        assert [error["field"] for error in problem["errors"]] == [field]
        assert client.get("/v1/me/preferences", headers=headers).json() == before


class TestConsents:
    def test_a_new_account_has_granted_nothing(self, client: TestClient) -> None:
        headers = sign_up(client, "fresh@example.com", consent=False)
        consents = client.get("/v1/me/consents", headers=headers).json()
        assert consents["wording_version"] == CONSENT_WORDING_VERSION
        assert set(consents["wording"]) == {p.value for p in Purpose}
        assert consents["history"] == []
        assert consents["purposes"] == {
            p.value: {"granted": False, "wording_version": None, "recorded_at": None} for p in Purpose
        }

    def test_the_ledger_is_append_only_latest_wins_and_records_the_wording(
        self,
        client: TestClient,
        container: Container,
        clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        headers = sign_up(client, "ledger@example.com", consent=False)
        subject = _subject(container, "ledger@example.com")
        grant = {"wording_version": CONSENT_WORDING_VERSION, "purposes": {"personalization": True, "push": False}}
        first = client.put("/v1/me/consents", headers=headers, json=grant)
        assert first.status_code == 200, first.text
        granted_at = clock.now()

        # Steps of 4 minutes: the whole story fits in one 15-minute access token.
        clock.advance(timedelta(minutes=4))
        # The same answer again appends nothing (a retried PUT is harmless).
        again = client.put("/v1/me/consents", headers=headers, json=grant).json()
        assert len(again["history"]) == 2

        clock.advance(timedelta(minutes=4))
        withdrawn = client.put(
            "/v1/me/consents",
            headers=headers,
            json={"wording_version": CONSENT_WORDING_VERSION, "purposes": {"personalization": False}},
        ).json()
        assert withdrawn["purposes"]["personalization"]["granted"] is False
        assert withdrawn["purposes"]["push"]["granted"] is False  # left out: kept

        # A new wording, shown and accepted, is a new line even though the answer is the same.
        monkeypatch.setitem(CONSENT_WORDINGS, NEXT_WORDING, CONSENT_WORDINGS[CONSENT_WORDING_VERSION])
        clock.advance(timedelta(minutes=4))
        regranted = client.put(
            "/v1/me/consents",
            headers=headers,
            json={"wording_version": NEXT_WORDING, "purposes": {"personalization": True, "push": False}},
        ).json()
        history = [(h["purpose"], h["granted"], h["wording_version"]) for h in regranted["history"]]
        assert history == [
            ("personalization", True, CONSENT_WORDING_VERSION),
            ("push", False, CONSENT_WORDING_VERSION),
            ("personalization", False, CONSENT_WORDING_VERSION),
            ("personalization", True, NEXT_WORDING),
            ("push", False, NEXT_WORDING),
        ]
        assert regranted["history"][0]["recorded_at"] == granted_at.isoformat().replace("+00:00", "Z")
        assert regranted["purposes"]["personalization"] == {
            "granted": True,
            "wording_version": NEXT_WORDING,
            "recorded_at": clock.now().isoformat().replace("+00:00", "Z"),
        }
        assert all(h["source"] == "api" for h in regranted["history"])
        with container.db.read() as session:
            assert session.scalar(select(func.count()).select_from(ConsentRow)) == 5

        # One consent.changed per ledger line, in order, with the wording version.
        container.worker.run_once(jobs=False)
        changes = [
            (e.data()["purpose"], e.data()["granted"], e.data()["wording_version"])
            for e in container.embedded_log().events_about(subject)
            if e.type == events.CONSENT_CHANGED
        ]
        assert changes == history

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"wording_version": "1999-01-01", "purposes": {"push": True}}, "body.wording_version"),
            (
                {"wording_version": CONSENT_WORDING_VERSION, "purposes": {"telepathy": True}},
                "body.purposes.telepathy.[key]",
            ),
            ({"wording_version": CONSENT_WORDING_VERSION, "purposes": {}}, "body.purposes"),
            ({"wording_version": CONSENT_WORDING_VERSION, "purposes": {"push": "yes"}}, "body.purposes.push"),
            ({"purposes": {"push": True}}, "body.wording_version"),
        ],
    )
    def test_an_invalid_put_is_a_422_naming_the_field_and_appends_nothing(
        self, client: TestClient, body: dict[str, Any], field: str
    ) -> None:
        headers = sign_up(client, "wrong@example.com", consent=False)
        response = client.put("/v1/me/consents", headers=headers, json=body)
        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == [field]
        assert client.get("/v1/me/consents", headers=headers).json()["history"] == []

    def test_consents_need_a_signed_in_person(self, client: TestClient) -> None:
        assert client.get("/v1/me/consents").status_code == 401
        assert client.put("/v1/me/consents", json={}).status_code == 401
