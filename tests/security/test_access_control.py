"""Access control, generated from the route table: user A can never reach user B's resources.

Every `/v1` route with a path parameter is called with A's token and B's resource ids and
must answer 404 problem+json (not 403: another person's id must look like an unknown one).
Every `/v1` route without one acts on "me": a read must not show any of B's ids, and a write
has an entry in `ACTIONS` saying what it must do. A route this file does not know fails the
suite, so whoever adds one also adds its resource kind (`PATH_PARAM_KINDS`) or its action.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.conftest import ContainerFactory
from tests.e2e.helpers import PASSWORD
from tests.support.calendar_feed import CalendarFeed, calendar_feed
from tests.support.calendars import WORK_CALENDAR
from tipwise.auth import PUBLIC_ROUTES
from tipwise.bootstrap import Container
from tipwise.integrations import IntegrationsSettings
from tipwise.kernel.errors import PROBLEM_JSON
from tipwise.profile import CONSENT_WORDING_VERSION, Purpose

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True, kw_only=True)
class Person:
    """Someone with one resource of every kind, and the credentials to reach them."""

    email: str
    user_id: str
    headers: dict[str, str]
    session_id: str
    tip_instance_id: str
    integration_id: str
    feed_url: str
    browser: TestClient
    csrf: str

    def identifiers(self) -> set[str]:
        return {self.email, self.user_id, self.session_id, self.tip_instance_id, self.integration_id}


# How to fill a path parameter with one of the victim's resources. A new kind of resource in a
# route's path needs its entry here (and the resource created in `_person`).
PATH_PARAM_KINDS: dict[str, Callable[[Person], str]] = {
    "session_id": lambda victim: victim.session_id,
    "tip_instance_id": lambda victim: victim.tip_instance_id,
    "integration_id": lambda victim: victim.integration_id,
}
# Path parameters that name something shared by everyone rather than someone's resource; a route
# whose parameters are all of these has nothing of B's to reach.
SHARED_PATH_PARAMS = {
    "provider": "a configured OIDC sign-in provider (the routes run before anyone is signed in)",
}
# A valid body for a route with path parameters that also takes one (else it answers 422 first).
PATH_ROUTE_BODIES: dict[tuple[str, str], Callable[[Person], dict[str, Any]]] = {
    ("POST", "/web/tips/{tip_instance_id}/reaction"): lambda _victim: {"reaction": "done"},
}


def _sign_in(client: TestClient, email: str) -> dict[str, str]:
    token = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _person(client: TestClient, email: str, feed: CalendarFeed) -> Person:
    registered = client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    headers = _sign_in(client, email)
    [session] = client.get("/v1/me/sessions", headers=headers).json()
    consents = {"wording_version": CONSENT_WORDING_VERSION, "purposes": dict.fromkeys(Purpose, True)}
    assert client.put("/v1/me/consents", headers=headers, json=consents).status_code == 200
    tip = client.post("/v1/tips/next", headers=headers)
    assert tip.status_code == 200, tip.text
    client.patch("/v1/me/preferences", headers=headers, json={"timezone": "Europe/Berlin"})
    integration = client.post("/v1/integrations", headers=headers, json={"url": feed.url})
    assert integration.status_code == 201, integration.text
    browser = TestClient(client.app)
    signin_page = browser.get("/signin")
    match = CSRF.search(signin_page.text)
    assert match
    signed_in = browser.post(
        "/signin", data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    csrf = CSRF.search(browser.get("/").text)
    assert csrf
    return Person(
        email=email,
        user_id=registered.json()["id"],
        headers=headers,
        session_id=session["id"],
        tip_instance_id=tip.json()["tip_instance_id"],
        integration_id=integration.json()["id"],
        feed_url=feed.url,
        browser=browser,
        csrf=csrf.group(1),
    )


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    # Everyone connects a calendar served on 127.0.0.1 (refused by default).
    return make_container(integrations_settings=IntegrationsSettings(allow_private_addresses=True))


@pytest.fixture
def feed() -> Iterator[CalendarFeed]:
    with calendar_feed(WORK_CALENDAR) as served:
        yield served


@pytest.fixture
def people(client: TestClient, feed: CalendarFeed) -> Iterator[tuple[Person, Person]]:
    """A (the caller) and B (the victim)."""
    a, b = _person(client, "a@example.com", feed), _person(client, "b@example.com", feed)
    yield a, b
    a.browser.close()
    b.browser.close()


PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _operations(app: FastAPI, *, prefix: str) -> list[tuple[str, str]]:
    """Return (method, path template) of every HTTP route of the app, as served (router prefixes applied)."""
    found: list[tuple[str, str]] = []
    # FastAPI keeps included routers as nested entries of `app.routes`; this walks them with their prefixes.
    for route in iter_route_contexts(app.routes):
        path, methods = route.path, route.methods
        if path is None or methods is None or not path.startswith(prefix):
            continue
        found.extend((method, path) for method in sorted(methods) if method != "HEAD")
    assert found, f"no routes under {prefix}: has FastAPI changed how it exposes its route table?"
    return found


def _path_params(path: str) -> list[str]:
    return [match.group(1) for match in PARAM.finditer(path)]


def _fill(path: str, victim: Person) -> str:
    return PARAM.sub(lambda match: PATH_PARAM_KINDS[match.group(1)](victim), path)


def _assert_not_found(response: Any, what: str) -> None:
    assert response.status_code == 404, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), what
    assert response.json()["code"] == "not_found", what


# What each `/v1` write without a path parameter must do when A calls it (B's state is the point).
def _next_tip(client: TestClient, a: Person, b: Person) -> None:
    response = client.post("/v1/tips/next", headers=a.headers)
    assert response.status_code == 200, response.text
    assert not b.identifiers() & set(re.findall(r"[\w.@-]+", response.text))


def _feedback_on_bs_tip(client: TestClient, a: Person, b: Person) -> None:
    body = {"tip_instance_id": b.tip_instance_id, "reaction": "done", "idempotency_key": "attack"}
    _assert_not_found(client.post("/v1/feedback", headers=a.headers, json=body), "feedback on B's tip")
    history = client.get("/v1/tips/history", headers=b.headers).json()["items"]
    assert [item["reaction"] for item in history] == [None]


def _patch_preferences(client: TestClient, a: Person, b: Person) -> None:
    response = client.patch("/v1/me/preferences", headers=a.headers, json={"timezone": "Asia/Tokyo"})
    assert response.status_code == 200, response.text
    assert client.get("/v1/me/preferences", headers=b.headers).json()["timezone"] == "Europe/Berlin"


def _put_consents(client: TestClient, a: Person, b: Person) -> None:
    before = client.get("/v1/me/consents", headers=b.headers).json()
    body = {"wording_version": CONSENT_WORDING_VERSION, "purposes": {Purpose.EMAIL: False}}
    response = client.put("/v1/me/consents", headers=a.headers, json=body)
    assert response.status_code == 200, response.text
    assert not b.identifiers() & set(re.findall(r"[\w.@-]+", response.text))
    assert client.get("/v1/me/consents", headers=b.headers).json() == before


def _add_integration(client: TestClient, a: Person, b: Person) -> None:
    before = client.get("/v1/integrations", headers=b.headers).json()
    response = client.post("/v1/integrations", headers=a.headers, json={"url": a.feed_url})
    assert response.status_code == 201, response.text
    assert not b.identifiers() & set(re.findall(r"[\w.@-]+", response.text))
    assert client.get("/v1/integrations", headers=b.headers).json() == before
    assert len(client.get("/v1/integrations", headers=a.headers).json()) == 2


def _logout(client: TestClient, a: Person, b: Person) -> None:
    throwaway = _sign_in(client, a.email)
    assert client.post("/v1/auth/logout", headers=throwaway).status_code == 204
    assert client.get("/v1/me/sessions", headers=throwaway).status_code == 401
    assert b.session_id in {s["id"] for s in client.get("/v1/me/sessions", headers=b.headers).json()}
    assert a.session_id in {s["id"] for s in client.get("/v1/me/sessions", headers=a.headers).json()}


def _export(client: TestClient, a: Person, b: Person) -> None:
    response = client.post("/v1/me/export", headers=a.headers)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        text = " ".join(archive.read(name).decode() for name in archive.namelist())
    assert a.email in text
    assert not b.identifiers() & set(re.findall(r"[\w.@-]+", text))


def _delete_me(client: TestClient, a: Person, b: Person) -> None:
    # Confirming with someone else's email deletes nobody.
    refused = client.request("DELETE", "/v1/me", headers=a.headers, json={"confirm": b.email})
    assert refused.status_code == 422, refused.text
    assert client.get("/v1/me/preferences", headers=b.headers).status_code == 200
    # A deletes A (the last action: A is gone afterwards), and B keeps everything.
    before = client.get("/v1/tips/history", headers=b.headers).json()
    assert client.request("DELETE", "/v1/me", headers=a.headers, json={"confirm": a.email}).status_code == 204
    assert client.get("/v1/me/preferences", headers=a.headers).status_code == 401
    assert client.get("/v1/tips/history", headers=b.headers).json() == before


ACTIONS: dict[tuple[str, str], Callable[[TestClient, Person, Person], None]] = {
    ("POST", "/v1/tips/next"): _next_tip,
    ("POST", "/v1/feedback"): _feedback_on_bs_tip,
    ("PATCH", "/v1/me/preferences"): _patch_preferences,
    ("PUT", "/v1/me/consents"): _put_consents,
    ("POST", "/v1/integrations"): _add_integration,
    ("POST", "/v1/auth/logout"): _logout,
    ("POST", "/v1/me/export"): _export,
    ("DELETE", "/v1/me"): _delete_me,
}


def unclassified(app: FastAPI) -> list[str]:
    """Return the `/v1` operations this suite does not know how to attack (each must be added)."""
    missing = []
    for method, path in _operations(app, prefix="/v1"):
        if path in PUBLIC_ROUTES:
            continue
        unknown = [name for name in _path_params(path) if name not in PATH_PARAM_KINDS]
        if unknown:
            missing.append(f"{method} {path}: no resource kind for {unknown} in PATH_PARAM_KINDS")
        elif not _path_params(path) and method != "GET" and (method, path) not in ACTIONS:
            missing.append(f"{method} {path}: acts on 'me' and has no entry in ACTIONS")
    return missing


class TestAccessControl:
    def test_every_v1_route_is_known_to_this_suite(self, client: TestClient) -> None:
        assert isinstance(client.app, FastAPI)
        assert unclassified(client.app) == []

    def test_a_new_route_with_an_unknown_path_parameter_fails_the_suite(self, client: TestClient) -> None:
        app = FastAPI()
        app.router.routes.extend(client.app.router.routes)  # type: ignore[attr-defined]

        @app.get("/v1/widgets/{widget_id}")
        def widget(widget_id: str) -> str:
            return widget_id

        @app.post("/v1/me/avatar")
        def avatar() -> None:
            return None

        assert unclassified(app) == [
            "GET /v1/widgets/{widget_id}: no resource kind for ['widget_id'] in PATH_PARAM_KINDS",
            "POST /v1/me/avatar: acts on 'me' and has no entry in ACTIONS",
        ]

    def test_routes_with_a_path_parameter_answer_404_for_someone_elses_resource(
        self, client: TestClient, people: tuple[Person, Person]
    ) -> None:
        a, b = people
        assert isinstance(client.app, FastAPI)
        attacked = []
        for method, path in _operations(client.app, prefix="/v1"):
            if not _path_params(path) or path in PUBLIC_ROUTES:
                continue
            body = PATH_ROUTE_BODIES.get((method, path))
            response = client.request(method, _fill(path, b), headers=a.headers, json=body(b) if body else None)
            _assert_not_found(response, f"{method} {path} with B's ids")
            attacked.append(f"{method} {path}")
        assert "DELETE /v1/me/sessions/{session_id}" in attacked
        # Nothing of B's changed: B's session still works.
        assert client.get("/v1/me/sessions", headers=b.headers).status_code == 200

    def test_reads_about_me_show_only_the_callers_data(self, client: TestClient, people: tuple[Person, Person]) -> None:
        a, b = people
        assert isinstance(client.app, FastAPI)
        read = []
        for method, path in _operations(client.app, prefix="/v1"):
            if method != "GET" or _path_params(path):
                continue
            response = client.get(path, headers=a.headers)
            assert response.status_code == 200, f"{path}: {response.text}"
            words = set(re.findall(r"[\w.@-]+", response.text))
            assert not b.identifiers() & words, f"GET {path} shows B's data"
            read.append(path)
        assert {"/v1/me/sessions", "/v1/tips/history", "/v1/me/preferences"} <= set(read)
        assert a.session_id in client.get("/v1/me/sessions", headers=a.headers).text
        assert a.tip_instance_id in client.get("/v1/tips/history", headers=a.headers).text

    def test_writes_about_me_never_touch_someone_else(self, client: TestClient, people: tuple[Person, Person]) -> None:
        a, b = people
        for action in ACTIONS.values():
            action(client, a, b)

    def test_every_v1_route_but_register_token_and_refresh_needs_a_token(
        self, client: TestClient, people: tuple[Person, Person]
    ) -> None:
        a, b = people
        assert isinstance(client.app, FastAPI)
        logged_out = _sign_in(client, a.email)
        assert client.post("/v1/auth/logout", headers=logged_out).status_code == 204
        checked = 0
        for method, path in _operations(client.app, prefix="/v1"):
            if path in PUBLIC_ROUTES:
                continue
            url = _fill(path, b) if _path_params(path) else path
            for headers in ({}, {"Authorization": "Bearer not.a.token"}, logged_out):
                response = client.request(method, url, headers=headers, json={})
                assert response.status_code == 401, f"{method} {path} with {headers}: {response.text}"
                assert response.headers["content-type"].startswith(PROBLEM_JSON)
                assert response.headers["www-authenticate"] == "Bearer"
            checked += 1
        assert checked >= 8
        assert PUBLIC_ROUTES == {"/v1/auth/register", "/v1/auth/token", "/v1/auth/refresh"}


class TestWebAccessControl:
    def test_web_routes_with_a_path_parameter_answer_404_for_someone_elses_resource(
        self, client: TestClient, people: tuple[Person, Person]
    ) -> None:
        a, b = people
        assert isinstance(client.app, FastAPI)
        attacked = []
        for method, path in _operations(client.app, prefix="/"):
            if path.startswith(("/v1", "/static")) or not _path_params(path):
                continue
            if all(name in SHARED_PATH_PARAMS for name in _path_params(path)):
                continue
            unknown = [name for name in _path_params(path) if name not in PATH_PARAM_KINDS]
            assert not unknown, f"{method} {path}: add a resource kind for {unknown} to PATH_PARAM_KINDS"
            body = PATH_ROUTE_BODIES.get((method, path))
            response = a.browser.request(
                method,
                _fill(path, b),
                headers={"X-CSRF-Token": a.csrf},
                data=body(b) if body else None,
                follow_redirects=False,
            )
            _assert_not_found(response, f"{method} {path} with B's ids")
            attacked.append(f"{method} {path}")
        assert {"POST /web/tips/{tip_instance_id}/reaction", "POST /sessions/{session_id}/revoke"} <= set(attacked)
        assert b.browser.get("/", follow_redirects=False).status_code == 200
        assert client.get("/v1/tips/history", headers=b.headers).json()["items"][0]["reaction"] is None


def test_uuid_path_parameters_of_unknown_resources_are_404_too(client: TestClient) -> None:
    registered = client.post("/v1/auth/register", json={"email": "c@example.com", "password": PASSWORD})
    assert registered.status_code == 201
    headers = _sign_in(client, "c@example.com")
    _assert_not_found(client.delete(f"/v1/me/sessions/{uuid.uuid4()}", headers=headers), "unknown session")
