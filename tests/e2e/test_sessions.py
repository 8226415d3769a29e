"""Sessions over HTTP: tokens and refresh, listing and revoking, sign-out, throttled sign-in, in the API and the web."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.e2e.helpers import PASSWORD
from tipwise.auth import Role
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import PROBLEM_JSON

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
API = {"User-Agent": "tipwise-e2e/1.0"}


def _register(client: TestClient, email: str) -> None:
    assert client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201


def _token(client: TestClient, email: str, password: str = PASSWORD, agent: str = "tipwise-e2e/1.0") -> Any:
    return client.post("/v1/auth/token", data={"username": email, "password": password}, headers={"User-Agent": agent})


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _refresh(client: TestClient, refresh_token: str) -> Any:
    return client.post("/v1/auth/refresh", data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


def _browser_sign_in(browser: TestClient, email: str, password: str = PASSWORD) -> Any:
    match = CSRF.search(browser.get("/signin").text)
    assert match
    return browser.post(
        "/signin", data={"email": email, "password": password, "csrf_token": match.group(1)}, follow_redirects=False
    )


class TestTokens:
    def test_sign_in_returns_a_short_lived_access_token_and_a_refresh_token(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        body = _token(client, "ada@example.com").json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 900
        assert client.get("/v1/me/sessions", headers=_bearer(body)).status_code == 200

    def test_refresh_rotates_and_reuse_signs_the_session_out(self, client: TestClient, clock: FakeClock) -> None:
        _register(client, "ada@example.com")
        first = _token(client, "ada@example.com").json()
        clock.advance(timedelta(minutes=16))
        _problem(client.get("/v1/me/sessions", headers=_bearer(first)), 401)

        second = _refresh(client, first["refresh_token"])
        assert second.status_code == 200, second.text
        assert second.json()["refresh_token"] != first["refresh_token"]
        assert client.get("/v1/me/sessions", headers=_bearer(second.json())).status_code == 200

        reuse = _problem(_refresh(client, first["refresh_token"]), 401)
        assert "already used" in reuse["detail"]
        _problem(client.get("/v1/me/sessions", headers=_bearer(second.json())), 401)
        _problem(_refresh(client, second.json()["refresh_token"]), 401)

    def test_refresh_needs_the_refresh_token_grant(self, client: TestClient) -> None:
        problem = _problem(client.post("/v1/auth/refresh", data={"grant_type": "password", "refresh_token": "x"}), 422)
        assert [e["field"] for e in problem["errors"]] == ["body.grant_type"]
        _problem(_refresh(client, "never-issued"), 401)

    def test_logout_revokes_the_session_of_the_token(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        tokens = _token(client, "ada@example.com").json()
        other = _token(client, "ada@example.com").json()

        assert client.post("/v1/auth/logout", headers=_bearer(tokens)).status_code == 204

        _problem(client.get("/v1/me/sessions", headers=_bearer(tokens)), 401)
        _problem(_refresh(client, tokens["refresh_token"]), 401)
        assert client.get("/v1/me/sessions", headers=_bearer(other)).status_code == 200


class TestSessionList:
    def test_sessions_are_listed_with_the_current_one_marked_and_can_be_revoked(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        phone = _token(client, "ada@example.com", agent="Phone/2.0").json()
        laptop = _token(client, "ada@example.com", agent="Laptop/9.1").json()

        listed = client.get("/v1/me/sessions", headers=_bearer(laptop)).json()
        assert [(s["user_agent"], s["current"], s["method"]) for s in listed] == [
            ("Laptop/9.1", True, "password"),
            ("Phone/2.0", False, "password"),
        ]
        assert listed[0]["ip"] == "testclient"
        assert {"id", "created_at", "last_used_at", "expires_at"} <= set(listed[0])

        phone_id = listed[1]["id"]
        assert client.delete(f"/v1/me/sessions/{phone_id}", headers=_bearer(laptop)).status_code == 204
        _problem(client.get("/v1/tips/history", headers=_bearer(phone)), 401)
        assert [s["user_agent"] for s in client.get("/v1/me/sessions", headers=_bearer(laptop)).json()] == [
            "Laptop/9.1"
        ]

    def test_a_malformed_session_id_is_a_422_naming_the_field(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        tokens = _token(client, "ada@example.com").json()
        problem = _problem(client.delete("/v1/me/sessions/not-a-uuid", headers=_bearer(tokens)), 422)
        assert problem["errors"][0]["field"] == "path.session_id"


class TestLoginThrottling:
    def test_five_failures_for_an_email_answer_429_with_retry_after_even_for_the_right_password(
        self, client: TestClient, clock: FakeClock
    ) -> None:
        _register(client, "ada@example.com")
        for _ in range(5):
            _problem(_token(client, "ada@example.com", "wrong password"), 401)

        refused = _problem(_token(client, "ada@example.com"), 429)

        assert refused["code"] == "too_many_requests"
        assert refused["retry_after"] == 900
        assert _token(client, "ada@example.com").headers["retry-after"] == "900"
        clock.advance(timedelta(minutes=15))
        assert _token(client, "ada@example.com").status_code == 200

    def test_the_web_sign_in_is_throttled_too(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        for _ in range(5):
            assert _browser_sign_in(client, "ada@example.com", "wrong password").status_code == 401
        page = _browser_sign_in(client, "ada@example.com")
        assert page.status_code == 429
        assert page.headers["retry-after"] == "900"
        assert "too many failed sign-ins" in page.text


class TestWebSessions:
    def test_the_browser_is_a_session_revoking_it_from_the_api_signs_it_out(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        tokens = _token(client, "ada@example.com").json()
        browser = TestClient(client.app, headers={"User-Agent": "Firefox/140"})
        assert _browser_sign_in(browser, "ada@example.com").status_code == 303
        assert browser.get("/sessions").status_code == 200

        listed = client.get("/v1/me/sessions", headers=_bearer(tokens)).json()
        [web] = [s for s in listed if s["user_agent"] == "Firefox/140"]
        assert client.delete(f"/v1/me/sessions/{web['id']}", headers=_bearer(tokens)).status_code == 204

        assert browser.get("/", follow_redirects=False).headers["location"] == "/signin"

    def test_the_sessions_page_lists_and_revokes_with_a_csrf_token(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        tokens = _token(client, "ada@example.com", agent="CLI/1.0").json()
        assert _browser_sign_in(client, "ada@example.com").status_code == 303

        page = client.get("/sessions")
        assert page.status_code == 200
        assert "CLI/1.0" in page.text
        assert "this browser" in page.text
        assert 'href="/sessions"' in page.text
        csrf = CSRF.search(page.text)
        assert csrf
        listed = client.get("/v1/me/sessions", headers=_bearer(tokens)).json()
        [api_id] = [s["id"] for s in listed if s["user_agent"] == "CLI/1.0"]
        assert f'/sessions/{api_id}/revoke"' in page.text

        forged = client.post(f"/sessions/{api_id}/revoke", data={"csrf_token": "forged"})
        assert forged.status_code == 403
        assert client.get("/v1/me/sessions", headers=_bearer(tokens)).status_code == 200

        revoked = client.post(f"/sessions/{api_id}/revoke", data={"csrf_token": csrf.group(1)}, follow_redirects=False)
        assert (revoked.status_code, revoked.headers["location"]) == (303, "/sessions")
        _problem(client.get("/v1/me/sessions", headers=_bearer(tokens)), 401)
        assert "CLI/1.0" not in client.get("/sessions").text

    def test_signing_out_of_the_web_ends_its_server_side_session(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        tokens = _token(client, "ada@example.com").json()
        browser = TestClient(client.app, headers={"User-Agent": "Firefox/140"})
        _browser_sign_in(browser, "ada@example.com")
        cookie = browser.cookies["tipwise_session"]
        csrf = CSRF.search(browser.get("/").text)
        assert csrf

        browser.post("/signout", data={"csrf_token": csrf.group(1)})

        agents = [s["user_agent"] for s in client.get("/v1/me/sessions", headers=_bearer(tokens)).json()]
        assert "Firefox/140" not in agents
        # Replaying the old cookie does not sign anyone in.
        replay = TestClient(client.app, cookies={"tipwise_session": cookie})
        assert replay.get("/", follow_redirects=False).headers["location"] == "/signin"

    def test_revoking_the_current_browser_session_from_its_page_signs_it_out(self, client: TestClient) -> None:
        _register(client, "ada@example.com")
        _browser_sign_in(client, "ada@example.com")
        page = client.get("/sessions").text
        csrf = CSRF.search(page)
        current = re.search(r'data-session="([0-9a-f-]{36})"', page)
        assert csrf
        assert current

        out = client.post(
            f"/sessions/{current.group(1)}/revoke", data={"csrf_token": csrf.group(1)}, follow_redirects=False
        )

        assert out.headers["location"] == "/signin"
        assert client.get("/sessions", follow_redirects=False).headers["location"] == "/signin"


class TestOperatorView:
    def test_a_revoked_operator_loses_the_operator_view(
        self, client: TestClient, container: Container, clock: FakeClock
    ) -> None:
        _register(client, "ops@example.com")
        container.auth.set_role(email="ops@example.com", role=Role.OPERATOR)
        _browser_sign_in(client, "ops@example.com")
        assert client.get("/ops").status_code == 200
        assert 'href="/ops"' in client.get("/").text

        container.auth.set_role(email="ops@example.com", role=Role.USER)
        clock.advance(timedelta(seconds=5))  # the session check cache's bound

        refused = client.get("/ops")
        assert refused.status_code == 403
        assert "Operators only" in refused.text
        assert client.get("/ops/rewards.png").status_code == 403
        assert client.get("/ops/evaluation.png").status_code == 403
