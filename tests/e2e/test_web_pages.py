"""The web pages over HTTP: sign up, ask for a tip, react, see history, change preferences."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.decisions import shown
from tipwise.auth import Role
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.recommender import FeedbackRequest, Reaction

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
INSTANCE = re.compile(r'hx-post="/web/tips/([0-9a-f-]{36})/reaction"')


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def _sign_up(client: TestClient, email: str = "web@example.com") -> str:
    page = client.get("/signup")
    token = _csrf(page.text)
    response = client.post(
        "/signup",
        data={"email": email, "password": "a long password", "timezone": "Europe/Berlin", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    return _csrf(client.get("/").text)


class TestWebPages:
    def test_anonymous_visitors_are_sent_to_sign_in(self, client: TestClient) -> None:
        response = client.get("/", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin"
        assert "Sign in" in client.get("/signin").text

    def test_sign_up_then_tip_reaction_and_history(self, client: TestClient, container: Container) -> None:
        csrf = _sign_up(client)
        home = client.get("/")
        assert "Give me a tip" in home.text

        card = client.post("/web/tips/next", headers={"X-CSRF-Token": csrf})
        assert card.status_code == 200
        for label in ("Done", "Snooze", "Dismiss", "Not for me"):
            assert f">{label}</button>" in card.text
        match = INSTANCE.search(card.text)
        assert match
        title = re.search(r"<h2>(.*?)</h2>", card.text)
        assert title

        reacted = client.post(
            f"/web/tips/{match.group(1)}/reaction", data={"reaction": "done"}, headers={"X-CSRF-Token": csrf}
        )
        assert reacted.status_code == 200
        assert "Nicely done!" in reacted.text

        history = client.get("/history")
        assert title.group(1) in history.text
        assert "Done" in history.text
        account = container.auth.authenticate(email="web@example.com", password="a long password")
        assert container.profile.preferences(user_id=account.id).timezone == "Europe/Berlin"

    def test_state_changes_without_the_csrf_token_are_refused(self, client: TestClient) -> None:
        _sign_up(client)
        refused = client.post("/web/tips/next", headers={"X-CSRF-Token": "forged"})
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_failed"
        non_ascii = client.post("/web/tips/next", headers={b"X-CSRF-Token": "f\u00f6rged".encode()})
        assert non_ascii.status_code == 403
        anonymous = TestClient(client.app)
        signup = anonymous.post("/signup", data={"email": "x@example.com", "password": "a long password"})
        assert signup.status_code == 403

    def test_preferences_page_saves_zone_and_mutes(self, client: TestClient) -> None:
        csrf = _sign_up(client)
        saved = client.post(
            "/preferences",
            data={"csrf_token": csrf, "timezone": "Asia/Tokyo", "muted": ["finance", "chores"]},
        )
        assert saved.status_code == 200
        assert "Saved." in saved.text
        assert 'value="Asia/Tokyo"' in saved.text
        assert len(re.findall(r'value="(finance|chores)"\s+checked', saved.text)) == 2

        invalid = client.post("/preferences", data={"csrf_token": csrf, "timezone": "Nowhere/Land"})
        assert invalid.status_code == 422
        assert "unknown IANA time zone" in invalid.text
        assert 'value="Asia/Tokyo"' in invalid.text

    @pytest.mark.parametrize(
        ("email", "password", "status", "message"),
        [("not-an-email", "a long password", 422, "valid email"), ("short@example.com", "short", 422, "8 characters")],
    )
    def test_sign_up_shows_what_is_wrong(
        self, client: TestClient, email: str, password: str, status: int, message: str
    ) -> None:
        token = _csrf(client.get("/signup").text)
        response = client.post("/signup", data={"email": email, "password": password, "csrf_token": token})
        assert response.status_code == status
        assert message in response.text

    def test_sign_in_with_a_wrong_password_shows_an_error_then_the_right_one_works(self, client: TestClient) -> None:
        csrf = _sign_up(client, "back@example.com")
        client.post("/signout", data={"csrf_token": csrf})
        assert client.get("/", follow_redirects=False).status_code == 303

        token = _csrf(client.get("/signin").text)
        wrong = client.post(
            "/signin", data={"email": "back@example.com", "password": "wrong one!", "csrf_token": token}
        )
        assert wrong.status_code == 401
        assert "email or password is wrong" in wrong.text
        right = client.post(
            "/signin",
            data={"email": "back@example.com", "password": "a long password", "csrf_token": token},
            follow_redirects=False,
        )
        assert right.status_code == 303
        assert "Give me a tip" in client.get("/").text


class TestOperatorPages:
    def _simulate(self, container: Container, clock: FakeClock, decisions: int) -> None:
        user = container.auth.register(email="sim@example.com", password="a long password").id
        for n in range(decisions):
            decision = container.recommender.next_tip(user_id=user)
            assert decision is not None
            reaction = Reaction.DONE if shown(decision).category == "movement" else Reaction.DISMISS
            container.recommender.record_feedback(
                user_id=user,
                request=FeedbackRequest(
                    tip_instance_id=decision.tip_instance_id, reaction=reaction, idempotency_key=f"k{n}"
                ),
            )
            container.worker.run_once()
            clock.advance(timedelta(minutes=41))

    def test_people_without_the_operator_role_are_refused(self, client: TestClient) -> None:
        assert client.get("/ops", follow_redirects=False).headers["location"] == "/signin"
        _sign_up(client)
        refused = client.get("/ops")
        assert refused.status_code == 403
        assert "Operators only" in refused.text
        assert client.get("/ops/rewards.png").status_code == 403

    def test_an_operator_sees_the_evaluation_and_the_learning_curves(
        self, client: TestClient, container: Container, clock: FakeClock
    ) -> None:
        self._simulate(container, clock, decisions=60)
        _sign_up(client, "ops@example.com")
        container.auth.set_role(email="ops@example.com", role=Role.OPERATOR)
        token = _csrf(client.get("/signin").text)
        client.post("/signin", data={"email": "ops@example.com", "password": "a long password", "csrf_token": token})

        page = client.get("/ops")
        assert page.status_code == 200
        assert "Live policy: <strong>linucb</strong>" in page.text
        for policy in ("linucb", "epsilon_greedy", "random"):
            assert f"<td>{policy}" in page.text
        assert ">DR</th>" in page.text
        assert "Outbox backlog: 0 events." in page.text
        assert 'href="/ops"' in page.text
        for image in ("/ops/evaluation.png", "/ops/rewards.png"):
            response = client.get(image)
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
            assert response.content.startswith(b"\x89PNG")
