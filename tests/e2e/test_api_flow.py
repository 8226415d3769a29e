"""User journeys over the HTTP API, on the embedded default."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.e2e.helpers import sign_up
from tipwise.advice import Category
from tipwise.app import create_app
from tipwise.bootstrap import Container
from tipwise.events.models import OutboxRow
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import PROBLEM_JSON
from tipwise.recommender.models import FeedbackRow, TipInstanceRow

PROBLEM_FIELDS = {"type", "title", "status", "code", "detail", "instance"}


def _counts(container: Container) -> dict[str, int]:
    with container.db.read() as session:
        return {
            "instances": session.scalar(select(func.count()).select_from(TipInstanceRow)) or 0,
            "feedback": session.scalar(select(func.count()).select_from(FeedbackRow)) or 0,
            "outbox": session.scalar(select(func.count()).select_from(OutboxRow)) or 0,
        }


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert PROBLEM_FIELDS <= set(body)
    assert body["status"] == status
    assert body["code"] == code
    return body


class TestTipJourney:
    def test_register_token_tip_feedback_history(self, client: TestClient, container: Container) -> None:
        headers = sign_up(client, "ada@example.com")

        tip = client.post("/v1/tips/next", headers=headers)
        assert tip.status_code == 200, tip.text
        decision = tip.json()
        assert decision["policy"] == "linucb"
        assert 0 < decision["propensity"] <= 1
        assert decision["tip"]["id"] == container.advice.get(decision["tip"]["id"]).id  # type: ignore[union-attr]

        feedback = client.post(
            "/v1/feedback",
            headers=headers,
            json={"tip_instance_id": decision["tip_instance_id"], "reaction": "done", "idempotency_key": "k-1"},
        )
        assert feedback.status_code == 200, feedback.text
        assert feedback.json()["reaction"] == "done"

        history = client.get("/v1/tips/history", headers=headers)
        assert history.status_code == 200
        items = history.json()["items"]
        assert [i["tip_instance_id"] for i in items] == [decision["tip_instance_id"]]
        assert items[0]["reaction"] == "done"
        assert items[0]["tip"]["title"] == decision["tip"]["title"]

    def test_decision_is_persisted_with_its_snapshot_probabilities_and_shadows(
        self, client: TestClient, container: Container
    ) -> None:
        headers = sign_up(client, "grace@example.com")
        decision = client.post("/v1/tips/next", headers=headers).json()
        with container.db.read() as session:
            row = session.get(TipInstanceRow, uuid.UUID(decision["tip_instance_id"]))
            assert row is not None
            assert row.tip_id == decision["tip"]["id"]
            assert row.policy == "linucb"
            assert row.policy_version.startswith("linucb@")
            assert row.context_snapshot["feature_spec"] == "tipwise.tips/v3"
            assert set(row.context_snapshot["actions"]) == set(row.probabilities)
            assert sum(row.probabilities.values()) == pytest.approx(1.0)
            assert row.probabilities[row.tip_id] == pytest.approx(row.propensity)
            assert {s["policy"] for s in row.shadows} == {"epsilon_greedy", "random"}
            outbox = [row.type for row in session.scalars(select(OutboxRow))]
        # The six consents granted at sign-up, then the decision.
        assert outbox == [*["consent.changed"] * 6, "tip.decided"]

    def test_explore_false_is_honoured_and_logged(self, client: TestClient) -> None:
        headers = sign_up(client, "edsger@example.com")
        decision = client.post("/v1/tips/next", headers=headers, json={"explore": False}).json()
        assert decision["explored"] is False

    def test_history_pages_newest_first_with_a_cursor(self, client: TestClient, clock: FakeClock) -> None:
        headers = sign_up(client, "pager@example.com")
        shown = []
        for _ in range(5):
            shown.append(client.post("/v1/tips/next", headers=headers).json()["tip_instance_id"])
            clock.advance(timedelta(minutes=1))
        first = client.get("/v1/tips/history", headers=headers, params={"limit": 2}).json()
        second = client.get(
            "/v1/tips/history", headers=headers, params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        third = client.get(
            "/v1/tips/history", headers=headers, params={"limit": 2, "cursor": second["next_cursor"]}
        ).json()
        listed = [i["tip_instance_id"] for page in (first, second, third) for i in page["items"]]
        assert listed == list(reversed(shown))
        assert third["next_cursor"] is None
        _problem(client.get("/v1/tips/history", headers=headers, params={"cursor": "garbage"}), 422, "invalid_input")


class TestFeedbackRules:
    def test_retry_with_the_same_key_returns_the_first_result_and_changes_nothing(
        self, client: TestClient, container: Container, clock: FakeClock
    ) -> None:
        headers = sign_up(client, "retry@example.com")
        instance = client.post("/v1/tips/next", headers=headers).json()["tip_instance_id"]
        body = {"tip_instance_id": instance, "reaction": "snooze", "idempotency_key": "same"}
        first = client.post("/v1/feedback", headers=headers, json=body)
        before = _counts(container)
        clock.advance(timedelta(minutes=5))
        again = client.post("/v1/feedback", headers=headers, json=body)
        assert again.status_code == first.status_code == 200
        assert again.json() == first.json()
        assert _counts(container) == before

    def test_a_different_reaction_to_the_same_tip_is_a_conflict(self, client: TestClient, container: Container) -> None:
        headers = sign_up(client, "twice@example.com")
        instance = client.post("/v1/tips/next", headers=headers).json()["tip_instance_id"]
        client.post(
            "/v1/feedback",
            headers=headers,
            json={"tip_instance_id": instance, "reaction": "done", "idempotency_key": "a"},
        )
        before = _counts(container)
        second = client.post(
            "/v1/feedback",
            headers=headers,
            json={"tip_instance_id": instance, "reaction": "dismiss", "idempotency_key": "b"},
        )
        _problem(second, 409, "reaction_already_recorded")
        assert _counts(container) == before

    def test_reusing_a_key_for_another_reaction_is_a_conflict(self, client: TestClient) -> None:
        headers = sign_up(client, "reuse@example.com")
        one = client.post("/v1/tips/next", headers=headers).json()["tip_instance_id"]
        two = client.post("/v1/tips/next", headers=headers).json()["tip_instance_id"]
        client.post(
            "/v1/feedback", headers=headers, json={"tip_instance_id": one, "reaction": "done", "idempotency_key": "k"}
        )
        reused = client.post(
            "/v1/feedback", headers=headers, json={"tip_instance_id": two, "reaction": "done", "idempotency_key": "k"}
        )
        _problem(reused, 409, "idempotency_key_reused")

    def test_reacting_to_someone_elses_tip_is_not_found_and_writes_nothing(
        self, client: TestClient, container: Container
    ) -> None:
        alice = sign_up(client, "alice@example.com")
        mallory = sign_up(client, "mallory@example.com")
        instance = client.post("/v1/tips/next", headers=alice).json()["tip_instance_id"]
        before = _counts(container)
        response = client.post(
            "/v1/feedback",
            headers=mallory,
            json={"tip_instance_id": instance, "reaction": "done", "idempotency_key": "x"},
        )
        _problem(response, 404, "not_found")
        assert _counts(container) == before
        assert client.get("/v1/tips/history", headers=mallory).json()["items"] == []

    def test_reacting_to_an_unknown_tip_is_not_found(self, client: TestClient) -> None:
        headers = sign_up(client, "ghost@example.com")
        response = client.post(
            "/v1/feedback",
            headers=headers,
            json={
                "tip_instance_id": "01a21350-0000-7000-8000-000000000000",
                "reaction": "done",
                "idempotency_key": "x",
            },
        )
        _problem(response, 404, "not_found")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"tip_instance_id": "not-a-uuid", "reaction": "done", "idempotency_key": "k"}, "body.tip_instance_id"),
            (
                {"tip_instance_id": "01a21350-0000-7000-8000-000000000000", "reaction": "love", "idempotency_key": "k"},
                "body.reaction",
            ),
            ({"tip_instance_id": "01a21350-0000-7000-8000-000000000000", "reaction": "done"}, "body.idempotency_key"),
            (
                {
                    "tip_instance_id": "01a21350-0000-7000-8000-000000000000",
                    "reaction": "done",
                    "idempotency_key": "k",
                    "extra": 1,
                },
                "body.extra",
            ),
        ],
    )
    def test_bad_input_is_a_422_problem_naming_the_field_and_writes_nothing(
        self, client: TestClient, container: Container, body: dict[str, Any], field: str
    ) -> None:
        headers = sign_up(client, "typo@example.com")
        before = _counts(container)
        problem = _problem(client.post("/v1/feedback", headers=headers, json=body), 422, "invalid_input")
        assert field in [e["field"] for e in problem["errors"]]
        assert _counts(container) == before

    def test_malformed_json_is_a_422_problem(self, client: TestClient) -> None:
        headers = {**sign_up(client, "json@example.com"), "content-type": "application/json"}
        _problem(client.post("/v1/feedback", headers=headers, content=b"{not json"), 422, "invalid_input")


class TestAccess:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("post", "/v1/tips/next"),
            ("post", "/v1/feedback"),
            ("get", "/v1/tips/history"),
            ("get", "/v1/me/preferences"),
            ("patch", "/v1/me/preferences"),
        ],
    )
    def test_v1_routes_need_a_bearer_token(self, client: TestClient, method: str, path: str) -> None:
        response = client.request(method, path, json={})
        _problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"

    def test_a_forged_token_is_refused(self, client: TestClient) -> None:
        response = client.get("/v1/tips/history", headers={"Authorization": "Bearer not.a.token"})
        _problem(response, 401, "unauthorized")

    def test_wrong_password_is_refused_without_saying_which_part_was_wrong(self, client: TestClient) -> None:
        sign_up(client, "who@example.com")
        wrong = client.post("/v1/auth/token", data={"username": "who@example.com", "password": "nope-nope"})
        unknown = client.post("/v1/auth/token", data={"username": "nobody@example.com", "password": "nope-nope"})
        assert _problem(wrong, 401, "unauthorized")["detail"] == _problem(unknown, 401, "unauthorized")["detail"]

    def test_an_email_registers_once_case_insensitively(self, client: TestClient) -> None:
        sign_up(client, "Case@Example.com")
        again = client.post("/v1/auth/register", json={"email": "case@example.COM", "password": "another password"})
        _problem(again, 409, "conflict")

    def test_registration_validates_email_and_password(self, client: TestClient) -> None:
        problem = _problem(
            client.post("/v1/auth/register", json={"email": "nope", "password": "short"}), 422, "invalid_input"
        )
        assert {"body.email", "body.password"} <= {e["field"] for e in problem["errors"]}


class TestPreferences:
    def test_defaults_then_patch_then_read_back(self, client: TestClient) -> None:
        headers = sign_up(client, "prefs@example.com")
        in_app_everywhere = {category.value: ["in_app"] for category in Category}
        assert client.get("/v1/me/preferences", headers=headers).json() == {
            "timezone": "UTC",
            "muted_categories": [],
            "active_hours": {},
            "quiet_hours": None,
            "frequency_cap_per_day": None,
            "channels": in_app_everywhere,
        }
        patched = client.patch(
            "/v1/me/preferences", headers=headers, json={"timezone": "Europe/Paris", "muted_categories": ["finance"]}
        )
        assert patched.status_code == 200
        assert client.get("/v1/me/preferences", headers=headers).json() == {
            "timezone": "Europe/Paris",
            "muted_categories": ["finance"],
            "active_hours": {},
            "quiet_hours": None,
            "frequency_cap_per_day": None,
            "channels": in_app_everywhere,
        }

    def test_an_unknown_time_zone_is_a_422_naming_the_field(self, client: TestClient) -> None:
        headers = sign_up(client, "zone@example.com")
        problem = _problem(
            client.patch("/v1/me/preferences", headers=headers, json={"timezone": "Mars/Olympus"}),
            422,
            "invalid_input",
        )
        assert problem["errors"][0]["field"] == "body.timezone"
        assert client.get("/v1/me/preferences", headers=headers).json()["timezone"] == "UTC"

    def test_muted_categories_are_never_recommended(self, client: TestClient, clock: FakeClock) -> None:
        headers = sign_up(client, "mute@example.com")
        muted = ["movement", "focus", "sleep", "hydration", "mindfulness", "social", "learning", "chores"]
        client.patch("/v1/me/preferences", headers=headers, json={"muted_categories": muted})
        categories = set()
        for _ in range(6):
            response = client.post("/v1/tips/next", headers=headers)
            assert response.status_code == 200
            categories.add(response.json()["tip"]["category"])
            clock.advance(timedelta(minutes=2))
        assert categories == {"finance"}

    def test_when_nothing_is_eligible_the_answer_is_204(self, client: TestClient) -> None:
        headers = sign_up(client, "quiet@example.com")
        everything = [
            "movement",
            "focus",
            "sleep",
            "hydration",
            "mindfulness",
            "social",
            "learning",
            "chores",
            "finance",
        ]
        client.patch("/v1/me/preferences", headers=headers, json={"muted_categories": everything})
        response = client.post("/v1/tips/next", headers=headers)
        assert response.status_code == 204
        assert response.content == b""


class TestOperations:
    def test_health_readiness_and_metrics(self, client: TestClient) -> None:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ok", "database": "ok", "event_bus": "embedded"}
        headers = sign_up(client, "ops@example.com")
        client.post("/v1/tips/next", headers=headers)
        text = client.get("/metrics").text
        assert 'tipwise_decisions_total{policy="linucb"} 1.0' in text
        assert (
            'tipwise_http_request_duration_seconds_count{method="POST",route="/v1/tips/next",status="200"} 1.0' in text
        )
        assert "tipwise_learner_lag_events" in text

    def test_readiness_fails_when_the_database_is_unreachable(self, container: Container) -> None:
        unreachable = Database.connect("postgresql+psycopg://tipwise@127.0.0.1:1/nothing?connect_timeout=2")
        app = create_app(dataclasses.replace(container, db=unreachable))
        with TestClient(app) as broken:
            response = broken.get("/readyz")
            assert broken.get("/healthz").status_code == 200
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "database": "unreachable"}

    def test_every_response_carries_a_request_id(self, client: TestClient) -> None:
        assert len(client.get("/healthz").headers["x-request-id"]) == 32
        assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
