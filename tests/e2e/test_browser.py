"""A person's first minutes with Tipwise, in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import FAST_AUTH
from tests.support.server import served_app

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = os.environ.get("TIPWISE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"chromium not found at {path}; `make test` installs Debian's chromium (make system-deps)")
    return path


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    """Serve the real app (embedded worker included) with uvicorn on a free port."""
    with served_app(tmp_path, auth_settings=FAST_AUTH) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/Lisbon")
    page = context.new_page()
    yield page
    context.close()


class TestFirstVisit:
    def test_sign_up_get_a_tip_react_and_see_it_in_history(self, phone: Page, base_url: str) -> None:
        phone.goto(base_url)
        expect(phone).to_have_url(f"{base_url}/signin")
        phone.get_by_role("link", name="Create an account").click()
        phone.get_by_label("Email").fill("first@example.com")
        phone.get_by_label("Password").fill("a long password")
        phone.get_by_role("button", name="Create account").click()

        # Onboarding: the consent screen comes before the first tip, with nothing ticked.
        expect(phone).to_have_url(f"{base_url}/welcome")
        personalization = phone.get_by_role("checkbox", name="Personalization")
        expect(personalization).not_to_be_checked()
        expect(phone.get_by_role("checkbox", name="Push notifications")).not_to_be_checked()
        personalization.check()
        phone.get_by_role("button", name="Continue").click()

        expect(phone).to_have_url(f"{base_url}/")
        phone.get_by_role("button", name="Give me a tip").click()
        card = phone.locator("article.card")
        expect(card).to_be_visible()
        for label in ("Done", "Snooze", "Dismiss", "Not for me"):
            expect(card.get_by_role("button", name=label, exact=True)).to_be_visible()
        title = card.locator("h2").inner_text()
        # Usable on a phone: nothing wider than the screen.
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        card.get_by_role("button", name="Done", exact=True).click()
        expect(phone.get_by_text("Nicely done!")).to_be_visible()

        phone.get_by_role("link", name="History").click()
        entry = phone.locator(".history li").first
        expect(entry).to_contain_text(title)
        expect(entry).to_contain_text("Done")

        phone.get_by_role("link", name="Preferences").click()
        expect(phone.get_by_label("Time zone")).to_have_value("Europe/Lisbon")
        # The consents section shows what was granted; withdrawing is one click and a save.
        personalization = phone.get_by_role("checkbox", name="Personalization")
        expect(personalization).to_be_checked()
        personalization.uncheck()
        phone.get_by_role("button", name="Save my choices").click()
        expect(phone.get_by_text("Your choices are saved.")).to_be_visible()
        expect(phone.get_by_role("checkbox", name="Personalization")).not_to_be_checked()
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    def test_not_for_me_and_a_new_tip_in_place(self, phone: Page, base_url: str) -> None:
        phone.goto(f"{base_url}/signup")
        phone.get_by_label("Email").fill("second@example.com")
        phone.get_by_label("Password").fill("a long password")
        phone.get_by_role("button", name="Create account").click()
        phone.get_by_role("button", name="Continue").click()  # the consent screen, nothing granted
        phone.get_by_role("button", name="Give me a tip").click()
        first = phone.locator("article.card").get_attribute("data-tip-id")
        phone.get_by_role("button", name="Not for me").click()
        expect(phone.get_by_text("you won't see that one again")).to_be_visible()
        phone.get_by_role("button", name="Give me a tip").click()
        expect(phone.locator("article.card")).to_be_visible()
        assert phone.locator("article.card").get_attribute("data-tip-id") != first
