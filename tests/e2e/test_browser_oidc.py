"""Sign in with an OIDC provider from the web pages, in a real browser, against a real local provider."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pydantic import SecretStr

from tests.conftest import FAST_AUTH
from tests.e2e.test_browser import CHROMIUM_FLAGS, _chromium
from tests.support.oidc_provider import MockProvider, flip_signature_byte, running_provider
from tests.support.server import served_app
from tipwise.auth import OidcProviderConfig, OidcSettings

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def provider() -> Iterator[MockProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture
def base_url(tmp_path: Path, provider: MockProvider) -> Iterator[str]:
    """Serve the real app with uvicorn, with the mock configured as the provider "Mock ID"."""
    oidc = OidcSettings(
        providers=[
            OidcProviderConfig(
                name="mock", title="Mock ID", issuer=provider.issuer, client_id="tipwise", client_secret=SecretStr("s")
            )
        ]
    )
    with served_app(tmp_path, auth_settings=FAST_AUTH, oidc_settings=oidc) as url:
        yield url


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        context = browser.new_context()
        yield context.new_page()
        context.close()
        browser.close()


class TestSignInWithProvider:
    def test_the_button_leads_through_the_provider_back_signed_in(
        self, page: Page, base_url: str, provider: MockProvider
    ) -> None:
        provider.set_user("browser-1", email="browser@example.org", email_verified=True)
        page.goto(f"{base_url}/signin")
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.wait_for_url(f"{provider.issuer}/oauth2/authorize?**")
        page.locator("input[name=sub]").fill("browser-1")
        page.get_by_role("button", name="Authorize").click()
        # A new account answers the consent screen first, as after a local sign-up.
        expect(page).to_have_url(f"{base_url}/welcome")
        page.get_by_role("button", name="Continue").click()
        expect(page).to_have_url(f"{base_url}/")
        expect(page.get_by_role("button", name="Give me a tip")).to_be_visible()

    def test_an_altered_token_ends_on_a_page_that_says_why(
        self, page: Page, base_url: str, provider: MockProvider
    ) -> None:
        provider.set_user("browser-2", email="browser2@example.org", email_verified=True)
        provider.rewriter.rewrite = flip_signature_byte
        page.goto(f"{base_url}/signin")
        page.get_by_role("link", name="Sign in with Mock ID").click()
        page.locator("input[name=sub]").fill("browser-2")
        page.get_by_role("button", name="Authorize").click()
        expect(page.get_by_role("heading", name="Sign-in failed")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text("signature does not verify")
        page.get_by_role("link", name="Back to sign in").click()
        expect(page).to_have_url(f"{base_url}/signin")
