"""The web pages over HTTP: sign up, ask for a tip, react, see history, change preferences."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.support.consents import registered
from tests.support.decisions import shown
from tipwise.advice import Category
from tipwise.auth import Role
from tipwise.bootstrap import Container
from tipwise.kernel.clock import FakeClock
from tipwise.profile import CONSENT_WORDING_VERSION, Channel, PreferencesPatch, Purpose, Weekday
from tipwise.recommender import FeedbackRequest, Reaction

ALL_PURPOSES = tuple(purpose.value for purpose in Purpose)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
INSTANCE = re.compile(r'hx-post="/web/tips/([0-9a-f-]{36})/reaction"')


def _csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def _sign_up(client: TestClient, email: str = "web@example.com", granted: tuple[str, ...] = ALL_PURPOSES) -> str:
    """Sign up, tick `granted` on the consent screen, and return the session's CSRF token."""
    page = client.get("/signup")
    token = _csrf(page.text)
    response = client.post(
        "/signup",
        data={"email": email, "password": "a long password", "timezone": "Europe/Berlin", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/welcome"
    welcome = client.get("/welcome")
    csrf = _csrf(welcome.text)
    answered = client.post(
        "/welcome",
        data={"csrf_token": csrf, "wording_version": CONSENT_WORDING_VERSION, "granted": list(granted)},
        follow_redirects=False,
    )
    assert answered.status_code == 303
    assert answered.headers["location"] == "/"
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


class TestConsentScreen:
    def test_sign_up_leads_to_the_consent_screen_with_nothing_ticked(self, client: TestClient) -> None:
        token = _csrf(client.get("/signup").text)
        client.post(
            "/signup",
            data={"email": "new@example.com", "password": "a long password", "csrf_token": token},
            follow_redirects=False,
        )
        # Until it is answered, the tips page sends the person back to the consent screen.
        home = client.get("/", follow_redirects=False)
        assert home.status_code == 303
        assert home.headers["location"] == "/welcome"
        welcome = client.get("/welcome")
        assert welcome.status_code == 200
        boxes = re.findall(r'<input type="checkbox" name="granted" value="([a-z_]+)"\s*(checked)?', welcome.text)
        assert [value for value, _ in boxes] == list(ALL_PURPOSES)
        assert all(not checked for _, checked in boxes)
        assert f'name="wording_version" value="{CONSENT_WORDING_VERSION}"' in welcome.text

    def test_the_answers_are_recorded_with_the_wording_shown_then_tips_are_not_personalized(
        self, client: TestClient, container: Container
    ) -> None:
        _sign_up(client, "careful@example.com", granted=("email",))
        account = container.auth.authenticate(email="careful@example.com", password="a long password")
        consents = container.profile.consents(user_id=account.id)
        assert consents.granted == {Purpose.EMAIL}
        assert {(e.purpose, e.granted, e.wording_version, e.source.value) for e in consents.ledger} == {
            (purpose, purpose is Purpose.EMAIL, CONSENT_WORDING_VERSION, "web") for purpose in Purpose
        }
        assert "Give me a tip" in client.get("/").text
        decision = container.recommender.next_tip(user_id=account.id)
        assert decision is not None
        assert decision.personalized is False

    def test_the_consent_screen_refuses_a_post_without_the_csrf_token(self, client: TestClient) -> None:
        _sign_up(client, "forged@example.com", granted=())
        refused = client.post("/welcome", data={"wording_version": CONSENT_WORDING_VERSION, "granted": ["push"]})
        assert refused.status_code == 403
        refused = client.post(
            "/preferences/consents", data={"wording_version": CONSENT_WORDING_VERSION, "granted": ["push"]}
        )
        assert refused.status_code == 403

    def test_preferences_page_changes_consents_and_shows_their_history(
        self, client: TestClient, container: Container, clock: FakeClock
    ) -> None:
        csrf = _sign_up(client, "change@example.com")
        page = client.get("/preferences")
        assert len(re.findall(r'name="granted" value="[a-z_]+"\s+checked', page.text)) == len(ALL_PURPOSES)
        clock.advance(timedelta(hours=1))
        saved = client.post(
            "/preferences/consents",
            data={"csrf_token": csrf, "wording_version": CONSENT_WORDING_VERSION, "granted": ["push", "email"]},
        )
        assert saved.status_code == 200
        assert "Your choices are saved." in saved.text
        checked = re.findall(r'name="granted" value="([a-z_]+)"\s+checked', saved.text)
        assert sorted(checked) == ["email", "push"]
        assert saved.text.count("withdrawn") == 4
        assert saved.text.count("granted <span") == 6
        account = container.auth.authenticate(email="change@example.com", password="a long password")
        assert container.profile.consents(user_id=account.id).granted == {Purpose.EMAIL, Purpose.PUSH}

    def test_preferences_page_saves_the_schedule_and_names_a_bad_field(
        self, client: TestClient, container: Container
    ) -> None:
        csrf = _sign_up(client, "quiet@example.com")
        form = {
            "csrf_token": csrf,
            "schedule": "1",
            "timezone": "Europe/Berlin",
            "quiet_start": "22:00",
            "quiet_end": "07:00",
            "active_mon": "07:30-12:00, 13:00-24:00",
            "active_sun": "off",
            "channel_sleep": ["in_app", "push"],
            "channel_finance": ["email"],
        }
        saved = client.post("/preferences", data={**form, "frequency_cap_per_day": "3"})
        assert saved.status_code == 200, saved.text
        assert 'name="quiet_start" value="22:00"' in saved.text
        assert 'name="frequency_cap_per_day" min="0" value="3"' in saved.text
        assert 'name="active_mon" value="07:30-12:00, 13:00-24:00"' in saved.text
        assert 'name="active_sun" value="off"' in saved.text
        assert 'name="active_tue" value=""' in saved.text
        account = container.auth.authenticate(email="quiet@example.com", password="a long password")
        prefs = container.profile.preferences(user_id=account.id)
        assert prefs.frequency_cap_per_day == 3
        assert [(w.start, w.end) for w in prefs.active_hours[Weekday.MON]] == [(450, 720), (780, 1440)]
        assert prefs.active_hours[Weekday.SUN] == ()
        assert Weekday.TUE not in prefs.active_hours
        assert prefs.channels_for(Category.SLEEP) == {Channel.IN_APP, Channel.PUSH}
        assert prefs.channels_for(Category.FINANCE) == {Channel.EMAIL}
        assert prefs.channels_for(Category.MOVEMENT) == frozenset()  # nothing ticked

        whole_day = client.post("/preferences", data={**form, "quiet_end": "22:00"})
        assert whole_day.status_code == 422
        assert "quiet_hours: Value error, quiet hours must not cover the whole day" in whole_day.text
        negative = client.post("/preferences", data={**form, "frequency_cap_per_day": "-1"})
        assert negative.status_code == 422
        assert "frequency_cap_per_day:" in negative.text
        backwards = client.post("/preferences", data={**form, "active_mon": "18:00-09:00"})
        assert backwards.status_code == 422
        assert "active_hours.mon.0: Value error, end must be after start" in backwards.text
        # Nothing of a refused form is stored.
        assert 'name="frequency_cap_per_day" min="0" value="3"' in backwards.text
        assert container.profile.preferences(user_id=account.id) == prefs

    def test_a_form_without_the_schedule_keeps_the_stored_schedule(
        self, client: TestClient, container: Container
    ) -> None:
        csrf = _sign_up(client, "older@example.com")
        account = container.auth.authenticate(email="older@example.com", password="a long password")
        container.profile.update_preferences(
            user_id=account.id, patch=PreferencesPatch.model_validate({"frequency_cap_per_day": 2})
        )
        saved = client.post("/preferences", data={"csrf_token": csrf, "timezone": "Asia/Tokyo"})
        assert saved.status_code == 200
        prefs = container.profile.preferences(user_id=account.id)
        assert (prefs.timezone, prefs.frequency_cap_per_day) == ("Asia/Tokyo", 2)


class TestOperatorPages:
    def _simulate(self, container: Container, clock: FakeClock, decisions: int) -> None:
        user = registered(container, "sim@example.com")
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
        # The test client runs no worker: the decisions' events wait in the outbox.
        backlog = container.bus_status()["outbox_backlog"]
        assert isinstance(backlog, int)
        assert backlog > 0
        assert f"Outbox backlog: {backlog} events." in page.text
        assert 'href="/ops"' in page.text
        for image in ("/ops/evaluation.png", "/ops/rewards.png"):
            response = client.get(image)
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
            assert response.content.startswith(b"\x89PNG")


class TestYourDataPage:
    def test_download_the_export_from_the_page(self, client: TestClient) -> None:
        _sign_up(client, "data@example.com")
        page = client.get("/data")
        assert page.status_code == 200
        assert "Download my data" in page.text
        assert "data@example.com" in page.text
        response = client.post("/data/export", data={"csrf_token": _csrf(page.text)})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert "attachment" in response.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert "README.txt" in archive.namelist()
            [account] = json.loads(archive.read("auth.json"))["account"]
        assert account["email"] == "data@example.com"

    def test_the_export_form_needs_the_csrf_token(self, client: TestClient) -> None:
        _sign_up(client, "data@example.com")
        assert client.post("/data/export", data={"csrf_token": "forged"}).status_code == 403

    def test_delete_account_needs_the_email_typed_then_signs_out_for_good(
        self, client: TestClient, container: Container
    ) -> None:
        _sign_up(client, "gone@example.com")
        page = client.get("/data")
        csrf = _csrf(page.text)

        refused = client.post("/data/delete", data={"csrf_token": csrf, "confirm": "someone@example.com"})
        assert refused.status_code == 422
        assert "exactly to confirm" in refused.text
        assert container.auth.authenticate(email="gone@example.com", password="a long password")

        done = client.post("/data/delete", data={"csrf_token": _csrf(refused.text), "confirm": "gone@example.com"})
        assert done.status_code == 200
        assert "Your account is deleted" in done.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
        signin = client.post(
            "/signin",
            data={
                "email": "gone@example.com",
                "password": "a long password",
                "csrf_token": _csrf(client.get("/signin").text),
            },
        )
        assert signin.status_code == 401
