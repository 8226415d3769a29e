"""The Calendar page: connect a feed, see its status, remove it; refused without the consent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import ContainerFactory
from tests.e2e.test_web_pages import ALL_PURPOSES, _csrf, _sign_up
from tests.support.calendar_feed import CalendarFeed, calendar_feed
from tests.support.calendars import WORK_CALENDAR
from tipwise.app import create_app
from tipwise.bootstrap import Container
from tipwise.integrations import IntegrationsSettings
from tipwise.profile import Purpose


@pytest.fixture
def container(make_container: ContainerFactory) -> Container:
    return make_container(integrations_settings=IntegrationsSettings(allow_private_addresses=True))


@pytest.fixture
def feed() -> Iterator[CalendarFeed]:
    with calendar_feed(WORK_CALENDAR) as served:
        yield served


class TestCalendarPage:
    def test_connect_see_and_remove_a_calendar(self, client: TestClient, feed: CalendarFeed) -> None:
        csrf = _sign_up(client)
        page = client.get("/calendar")
        assert page.status_code == 200
        assert "Secret address in iCal" in page.text
        assert "Preferences</a> first" not in page.text  # consented at sign-up
        assert 'href="/calendar"' in page.text  # in the navigation

        connected = client.post("/calendar", data={"csrf_token": csrf, "url": feed.url}, follow_redirects=False)
        assert connected.status_code == 303
        listed = client.get("/calendar").text
        assert "127.0.0.1" in listed
        assert "4 busy times ahead" in listed
        assert "secret-token" not in listed

        [integration] = [part.split('"')[0] for part in listed.split('action="/calendar/')[1:]]
        integration_id = integration.removesuffix("/remove")
        removed = client.post(
            f"/calendar/{integration_id}/remove", data={"csrf_token": _csrf(listed)}, follow_redirects=False
        )
        assert removed.status_code == 303
        assert "127.0.0.1" not in client.get("/calendar").text

    def test_a_bad_address_shows_the_reason(self, client: TestClient, feed: CalendarFeed) -> None:
        csrf = _sign_up(client)
        feed.body = b"<html>Sign in to your calendar</html>"
        response = client.post("/calendar", data={"csrf_token": csrf, "url": feed.url})
        assert response.status_code == 422
        assert "did not answer with an iCalendar file" in response.text

    def test_without_the_consent_the_page_says_so_and_nothing_is_read(
        self, container: Container, feed: CalendarFeed
    ) -> None:
        with TestClient(create_app(container)) as client:
            others = tuple(p for p in ALL_PURPOSES if p != Purpose.CALENDAR_SIGNALS.value)
            csrf = _sign_up(client, granted=others)
            assert 'under <a href="/preferences">Preferences</a> first' in client.get("/calendar").text
            response = client.post("/calendar", data={"csrf_token": csrf, "url": feed.url})
        assert response.status_code == 409
        assert "consent to calendar signals" in response.text
        assert feed.requests == []

    def test_a_form_without_the_csrf_token_is_refused(self, client: TestClient, feed: CalendarFeed) -> None:
        _sign_up(client)
        response = client.post("/calendar", data={"url": feed.url})
        assert response.status_code == 403
        assert feed.requests == []
