"""No password, token or key ever reaches the logs, even at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
import structlog
from fastapi.testclient import TestClient

from tests.conftest import ContainerFactory
from tests.support.calendar_feed import FEED_PATH, calendar_feed
from tests.support.calendars import WORK_CALENDAR
from tests.support.consents import registered
from tipwise.app import create_app
from tipwise.integrations import IntegrationsSettings
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.logging import REDACTED, configure_logging, get_logger

SECRET_KEY = "test-secret-key-with-enough-length"  # what `make_container` configures
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "incorrect donkey battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Capture every record, stdlib and structlog, at DEBUG as JSON lines; restore logging afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_alembic = logging.getLogger("alembic").level
    saved_structlog = structlog.get_config()
    stream = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=stream)
    # Module loggers must not stay bound to this configuration after the test (structlog's
    # `capture_logs` in other tests relies on loggers that are not cached).
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield stream
    finally:
        structlog.configure(**saved_structlog)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logging.getLogger("alembic").setLevel(saved_alembic)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class TestSecretsNeverLogged:
    def test_sign_up_sign_in_refresh_reuse_and_api_calls_log_no_secret(
        self, make_container: ContainerFactory, captured_logs: io.StringIO
    ) -> None:
        secrets: list[str] = [SECRET_KEY, PASSWORD, WRONG_PASSWORD]
        with TestClient(create_app(make_container())) as client:
            email = "secretive@example.com"
            assert client.post("/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
            bad = client.post("/v1/auth/token", data={"username": email, "password": WRONG_PASSWORD})
            assert bad.status_code == 401
            first = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD}).json()
            second = client.post(
                "/v1/auth/refresh", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
            ).json()
            headers = {"Authorization": f"Bearer {second['access_token']}"}
            assert client.post("/v1/tips/next", headers=headers).status_code == 200
            assert client.get("/v1/me/sessions", headers=headers).status_code == 200
            # Reuse of the first refresh token: the security event is logged, the token is not.
            reused = client.post(
                "/v1/auth/refresh", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
            )
            assert reused.status_code == 401
            assert client.get("/v1/me/sessions", headers=headers).status_code == 401
            # The web sign-in form too, with its CSRF token and session cookie.
            csrf = CSRF.search(client.get("/signin").text)
            assert csrf
            signed_in = client.post(
                "/signin",
                data={"email": email, "password": PASSWORD, "csrf_token": csrf.group(1)},
                follow_redirects=False,
            )
            assert signed_in.status_code == 303
            secrets += [csrf.group(1), client.cookies["tipwise_session"]]
            for issued in (first, second):
                secrets += [issued["access_token"], issued["refresh_token"], issued["access_token"].split(".")[2]]

        output = captured_logs.getvalue()
        events = {record["event"] for record in _records(captured_logs)}
        assert {"session_started", "login_failed", "security.refresh_token_reused", "request"} <= events
        assert any(record.get("level") == "debug" for record in _records(captured_logs)), "DEBUG was not captured"
        leaked = [secret[:12] + "..." for secret in secrets if secret in output]
        assert leaked == []

    def test_secrets_bound_by_mistake_are_redacted(self, captured_logs: io.StringIO) -> None:
        jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        log = get_logger("tipwise.test")

        log.info("careless", password=PASSWORD, refresh_token="r-123-secret", headers={"Authorization": "Bearer x1"})
        log.debug(f"header was Bearer abc.def-ghi and token {jwt_like}")
        logging.getLogger("thirdparty").warning("Authorization: bearer stdlib-secret-value")

        output = captured_logs.getvalue()
        for secret in (PASSWORD, "r-123-secret", "x1", "abc.def-ghi", jwt_like, "stdlib-secret-value"):
            assert secret not in output
        careless = next(r for r in _records(captured_logs) if r["event"] == "careless")
        assert careless["password"] == careless["refresh_token"] == REDACTED
        assert careless["headers"] == {"Authorization": REDACTED}
        assert "header was" in output


class TestCalendarAddressNeverLogged:
    def test_adding_syncing_and_failing_feeds_log_no_part_of_the_secret_address(
        self, make_container: ContainerFactory, captured_logs: io.StringIO, clock: FakeClock
    ) -> None:
        container = make_container(integrations_settings=IntegrationsSettings(allow_private_addresses=True))
        user = registered(container, "cal@example.com")
        with calendar_feed(WORK_CALENDAR) as feed, TestClient(create_app(container)) as client:
            token = container.auth.login(email="cal@example.com", password="a long password").access_token
            headers = {"Authorization": f"Bearer {token}"}
            assert client.post("/v1/integrations", headers=headers, json={"url": feed.url}).status_code == 201
            clock.advance(container.integrations.settings.sync_interval)
            assert container.integrations.sync().not_modified == 1
            feed.status = 500
            clock.advance(container.integrations.settings.sync_interval)
            assert container.integrations.sync().failed == 1
            token = container.auth.login(email="cal@example.com", password="a long password").access_token
            headers = {"Authorization": f"Bearer {token}"}
            bad = client.post("/v1/integrations", headers=headers, json={"url": feed.url + "?wrong"})
            assert bad.status_code == 422
        assert user
        output = captured_logs.getvalue()
        events = {record["event"] for record in _records(captured_logs)}
        assert {"calendar_connected", "calendar_sync_failed"} <= events
        assert "127.0.0.1" in output  # the host is logged, to say which feed failed
        assert FEED_PATH.split("/")[3] not in output  # the token in the path never is
        # httpx logs each request it makes: with the host, and the path redacted.
        requests = [str(r["event"]) for r in _records(captured_logs) if r.get("logger") == "httpx"]
        assert requests
        assert all(f"http://127.0.0.1:{feed.base_url.rsplit(':', 1)[1]}/{REDACTED}" in r for r in requests)
