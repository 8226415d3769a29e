"""Sign in with OIDC, end to end: the web pages, the app and a real OpenID provider over local HTTP.

The provider is `oidc-provider-mock` (see tests/support/oidc_provider.py). Tampered, swapped and late ID
tokens come from that same provider: a thin layer in front of its token endpoint alters or replaces the
token it returns, and a clock set ahead makes a genuine token expired.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import psycopg
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi.testclient import TestClient
from httpx2 import Response
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from tests.conftest import ContainerFactory
from tests.e2e.helpers import PASSWORD, sign_up
from tests.support.network import free_port
from tests.support.oidc_provider import MockProvider, flip_signature_byte, running_provider
from tests.support.postgres import fresh_database
from tipwise.app import create_app
from tipwise.auth import LoginMethod, OidcProviderConfig, OidcSettings
from tipwise.auth.models import IdentityRow, OidcLoginRow
from tipwise.auth.oidc_service import state_hash
from tipwise.bootstrap import Container
from tipwise.gateway.web import OIDC_STATE_COOKIE
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import Unauthorized

CLIENT_ID = "tipwise-test-client"
# The provider under test still calls Authlib APIs that Authlib deprecates; not this project's concern.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def provider() -> Iterator[MockProvider]:
    with running_provider() as running:
        yield running


@pytest.fixture(autouse=True)
def _untampered(provider: MockProvider) -> Iterator[None]:
    provider.rewriter.rewrite = None
    yield
    provider.rewriter.rewrite = None


@pytest.fixture(autouse=True)
def _real_time(clock: FakeClock) -> None:
    # The provider stamps its tokens with the wall clock.
    clock.set(datetime.now(UTC))


def oidc_settings(issuer: str, **overrides: object) -> OidcSettings:
    config = OidcProviderConfig.model_validate(
        {
            "name": "mock",
            "title": "Mock ID",
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": SecretStr("not-checked-by-the-mock"),
            **overrides,
        }
    )
    return OidcSettings(providers=[config], jwks_min_refresh_seconds=0)


@pytest.fixture
def container(make_container: ContainerFactory, provider: MockProvider) -> Container:
    return make_container(oidc_settings=oidc_settings(provider.issuer))


@pytest.fixture
def web(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), follow_redirects=False) as client:
        yield client


def start_login(web: TestClient, name: str = "mock") -> str:
    """Press "Sign in with ..." and return the provider URL the browser is sent to."""
    response = web.get(f"/auth/oidc/{name}/login")
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def signed_in(web: TestClient) -> bool:
    return web.get("/preferences").status_code == 200


def identity(container: Container, subject: str) -> IdentityRow | None:
    with container.db.read() as session:
        return session.scalar(select(IdentityRow).where(IdentityRow.subject == subject))


def sign_in(web: TestClient, provider: MockProvider, *, sub: str) -> Response:
    return web.get(provider.approve(start_login(web), sub=sub))


class TestSignInPage:
    def test_offers_one_button_per_configured_provider(self, web: TestClient) -> None:
        page = web.get("/signin")
        assert page.status_code == 200
        assert 'href="/auth/oidc/mock/login"' in page.text
        assert "Sign in with Mock ID" in page.text

    def test_offers_no_provider_button_when_none_is_configured(self, make_container: ContainerFactory) -> None:
        with TestClient(create_app(make_container())) as client:
            assert "/auth/oidc/" not in client.get("/signin").text


class TestLoginRedirect:
    def test_sends_the_browser_to_the_provider_with_state_nonce_and_an_s256_challenge(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        url = start_login(web)
        params = query(url)
        assert url.startswith(f"{provider.issuer}/oauth2/authorize?")
        assert params["response_type"] == "code"
        assert params["client_id"] == CLIENT_ID
        assert params["redirect_uri"] == "http://testserver/auth/oidc/mock/callback"
        assert params["scope"] == "openid email profile"
        assert params["code_challenge_method"] == "S256"
        assert len(params["state"]) >= 43
        assert len(params["nonce"]) >= 43
        assert "response_mode" not in params
        # The browser keeps the state; the server keeps nonce and verifier, and only the state's hash.
        assert web.cookies.get(OIDC_STATE_COOKIE) == params["state"]
        with container.db.read() as session:
            pending = session.get(OidcLoginRow, state_hash(params["state"]))
        assert pending is not None
        assert pending.nonce == params["nonce"]
        assert create_s256_code_challenge(pending.code_verifier) == params["code_challenge"]

    def test_an_unreachable_provider_is_a_502_page(self, make_container: ContainerFactory) -> None:
        container = make_container(oidc_settings=oidc_settings(f"http://127.0.0.1:{free_port()}"))
        with TestClient(create_app(container), follow_redirects=False) as web:
            response = web.get("/auth/oidc/mock/login")
        assert response.status_code == 502
        assert "could not read Mock ID&#39;s discovery document" in response.text

    def test_the_state_cookie_is_http_only_lax_and_short_lived(self, web: TestClient) -> None:
        cookie = web.get("/auth/oidc/mock/login").headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "max-age=600" in cookie
        assert "secure" not in cookie  # plain http here

    def test_unknown_provider_is_a_404_page(self, web: TestClient) -> None:
        response = web.get("/auth/oidc/nowhere/login")
        assert response.status_code == 404
        assert "no sign-in provider named &#39;nowhere&#39;" in response.text


class TestSignIn:
    def test_first_sign_in_creates_an_account_without_a_password(
        self, make_container: ContainerFactory, provider: MockProvider, database_url: str
    ) -> None:
        container = make_container(database_url, oidc_settings=oidc_settings(provider.issuer))
        provider.set_user("ada-1", email="Ada@Example.org", email_verified=True, name="Ada Lovelace")
        with TestClient(create_app(container), follow_redirects=False) as web:
            assert not signed_in(web)
            response = sign_in(web, provider, sub="ada-1")
            assert response.status_code == 303
            assert response.headers["location"] == "/"
            assert OIDC_STATE_COOKIE not in web.cookies
            assert signed_in(web)
        row = identity(container, "ada-1")
        assert row is not None
        assert row.issuer == provider.issuer
        assert row.email == "ada@example.org"
        assert row.display_name == "Ada Lovelace"
        account = container.auth.account(user_id=row.account_id)
        assert account is not None
        assert account.email == "ada@example.org"
        # No password was set: neither a guess nor the dummy hash's own password opens the account.
        for password in (PASSWORD, "not-a-real-password", ""):
            with pytest.raises(Unauthorized):
                container.auth.authenticate(email="ada@example.org", password=password)

    @pytest.mark.postgres
    def test_a_first_sign_in_racing_another_that_creates_the_account_links_to_it(
        self, make_container: ContainerFactory, provider: MockProvider, postgres_admin_url: str
    ) -> None:
        provider.set_user("race-1", email="race@example.org", email_verified=True)
        with fresh_database(postgres_admin_url) as url:
            container = make_container(url, oidc_settings=oidc_settings(provider.issuer))
            # Another sign-in (another tab) has created the account and not committed yet...
            other = psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
            theirs = uuid4()
            other.execute(
                "INSERT INTO auth_user (id, email, password_hash, role, created_at)"
                " VALUES (%s, %s, NULL, 'user', now())",
                (theirs, "race@example.org"),
            )
            answers: list[Response] = []
            with TestClient(create_app(container), follow_redirects=False) as web:
                racing = threading.Thread(target=lambda: answers.append(sign_in(web, provider, sub="race-1")))
                racing.start()  # ...so this sign-in's insert of the same email waits on the unique index,
                time.sleep(1.0)
                other.commit()  # and fails once the other commits: the retry finds that account.
                other.close()
                racing.join(30)
            assert answers, "the sign-in did not finish"
            assert answers[0].status_code == 303, answers[0].text
            row = identity(container, "race-1")
            assert row is not None
            assert row.account_id == theirs

    def test_an_oidc_sign_in_is_a_listed_session_and_revoking_it_signs_the_browser_out(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        provider.set_user("sid-1", email="sid@example.org", email_verified=True)
        sign_in(web, provider, sub="sid-1")
        assert signed_in(web)
        row = identity(container, "sid-1")
        assert row is not None

        [session] = container.auth.sessions(user_id=row.account_id)
        assert session.method is LoginMethod.OIDC
        assert session.user_agent == "testclient"

        container.auth.revoke_session(user_id=row.account_id, session_id=session.id)
        assert not signed_in(web)

    def test_the_next_sign_in_finds_the_account_by_its_identity_even_with_a_new_email(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        provider.set_user("bob-1", email="bob@example.org", email_verified=True)
        assert sign_in(web, provider, sub="bob-1").status_code == 303
        first = identity(container, "bob-1")
        provider.set_user("bob-1", email="robert@example.org", email_verified=True)
        other_browser = TestClient(web.app, follow_redirects=False)
        assert sign_in(other_browser, provider, sub="bob-1").status_code == 303
        again = identity(container, "bob-1")
        assert first is not None
        assert again is not None
        assert again.account_id == first.account_id
        account = container.auth.account(user_id=first.account_id)
        assert account is not None
        assert account.email == "bob@example.org"

    def test_a_verified_email_links_the_identity_to_the_existing_password_account(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        sign_up(web, "carol@example.org")
        existing = container.auth.authenticate(email="carol@example.org", password=PASSWORD)
        provider.set_user("carol-1", email="carol@example.org", email_verified=True)
        assert sign_in(web, provider, sub="carol-1").status_code == 303
        row = identity(container, "carol-1")
        assert row is not None
        assert row.account_id == existing.id
        # The password still works after linking.
        assert container.auth.authenticate(email="carol@example.org", password=PASSWORD).id == existing.id

    def test_an_unverified_email_of_an_existing_account_is_refused(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        sign_up(web, "dave@example.org")
        provider.set_user("mallory-1", email="dave@example.org", email_verified=False)
        response = sign_in(web, provider, sub="mallory-1")
        assert response.status_code == 400
        assert "does not confirm that this address is yours" in response.text
        assert identity(container, "mallory-1") is None
        assert not signed_in(web)

    def test_an_unverified_new_email_gets_its_own_account(
        self, web: TestClient, container: Container, provider: MockProvider
    ) -> None:
        provider.set_user("erin-1", email="erin@example.org")
        assert sign_in(web, provider, sub="erin-1").status_code == 303
        row = identity(container, "erin-1")
        assert row is not None
        account = container.auth.account(user_id=row.account_id)
        assert account is not None
        assert account.email == "erin@example.org"


class TestRefusals:
    def refused(self, web: TestClient, response: Response, status: int, message: str) -> None:
        assert response.status_code == status, response.text
        assert "Sign-in failed" in response.text
        assert message in response.text
        assert not signed_in(web)

    def test_a_tampered_id_token_is_refused(self, web: TestClient, provider: MockProvider) -> None:
        provider.set_user("frank-1", email="frank@example.org", email_verified=True)
        provider.rewriter.rewrite = flip_signature_byte
        with capture_logs() as logs:
            response = sign_in(web, provider, sub="frank-1")
        self.refused(web, response, 401, "signature does not verify")
        refusals = [entry for entry in logs if entry["event"] == "oidc_login_refused"]
        assert [entry["reason"] for entry in refusals] == ["bad_signature"]
        # The reason is logged; the token never is.
        assert "eyJ" not in json.dumps(logs, default=str)

    def test_an_id_token_for_another_client_is_refused(self, web: TestClient, provider: MockProvider) -> None:
        provider.set_user("grace-1", email="grace@example.org", email_verified=True)
        url = start_login(web)
        # A genuine token from the same provider, with this very nonce, but issued to another application.
        foreign = provider.issue_id_token(client_id="another-app", sub="grace-1", nonce=query(url)["nonce"])
        provider.rewriter.rewrite = lambda _token: foreign
        response = web.get(provider.approve(url, sub="grace-1"))
        self.refused(web, response, 401, "meant for another application")

    def test_an_expired_id_token_is_refused(self, web: TestClient, provider: MockProvider, clock: FakeClock) -> None:
        provider.set_user("heidi-1", email="heidi@example.org", email_verified=True)
        # The provider's tokens live an hour; by this server's clock that hour is over.
        clock.set(datetime.now(UTC) + timedelta(hours=1, minutes=5))
        response = sign_in(web, provider, sub="heidi-1")
        self.refused(web, response, 401, "the ID token expired at")

    def test_a_replayed_state_is_refused(self, web: TestClient, provider: MockProvider) -> None:
        provider.set_user("ivan-1", email="ivan@example.org", email_verified=True)
        callback = provider.approve(start_login(web), sub="ivan-1")
        assert web.get(callback).status_code == 303
        assert signed_in(web)
        # The same answer again, with the browser's state cookie put back as an attacker could.
        fresh = TestClient(web.app, follow_redirects=False)
        fresh.cookies.set(OIDC_STATE_COOKIE, query(callback)["state"])
        self.refused(fresh, fresh.get(callback), 400, "unknown or was already used")

    def test_an_id_token_from_another_sign_in_attempt_is_refused(self, web: TestClient, provider: MockProvider) -> None:
        provider.set_user("judy-1", email="judy@example.org", email_verified=True)
        other_attempt = provider.issue_id_token(client_id=CLIENT_ID, sub="judy-1", nonce="another-attempts-nonce")
        provider.rewriter.rewrite = lambda _token: other_attempt
        response = sign_in(web, provider, sub="judy-1")
        self.refused(web, response, 401, "nonce mismatch")

    def test_an_answer_arriving_in_another_browser_is_refused(self, web: TestClient, provider: MockProvider) -> None:
        provider.set_user("ken-1", email="ken@example.org", email_verified=True)
        callback = provider.approve(start_login(web), sub="ken-1")
        victim = TestClient(web.app, follow_redirects=False)
        self.refused(victim, victim.get(callback), 400, "started in another browser")

    def test_a_sign_in_that_took_too_long_is_refused(
        self, web: TestClient, provider: MockProvider, clock: FakeClock
    ) -> None:
        provider.set_user("leo-1", email="leo@example.org", email_verified=True)
        callback = provider.approve(start_login(web), sub="leo-1")
        clock.advance(timedelta(minutes=11))
        self.refused(web, web.get(callback), 400, "took too long")

    def test_the_providers_error_is_shown(self, web: TestClient, provider: MockProvider) -> None:
        response = web.get(provider.deny(start_login(web)))
        self.refused(web, response, 400, "Mock ID did not sign you in: access_denied")

    def test_a_callback_without_state_is_refused(self, web: TestClient) -> None:
        self.refused(web, web.get("/auth/oidc/mock/callback?code=abc"), 400, "carries no state")


class TestFormPost:
    """Apple's way: the answer is POSTed, and the first one carries the person's name as a `user` field."""

    def test_behind_https_the_state_cookie_rides_along_a_cross_site_post(
        self, make_container: ContainerFactory, provider: MockProvider
    ) -> None:
        settings = oidc_settings(provider.issuer, response_mode="form_post")
        settings = settings.model_copy(update={"public_base_url": "https://tips.example.org/"})
        with TestClient(create_app(make_container(oidc_settings=settings)), follow_redirects=False) as web:
            response = web.get("/auth/oidc/mock/login")
        assert query(response.headers["location"])["redirect_uri"] == "https://tips.example.org/auth/oidc/mock/callback"
        cookie = response.headers["set-cookie"].lower()
        assert cookie.startswith(f"{OIDC_STATE_COOKIE}=")
        assert "samesite=none" in cookie
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "path=/auth/oidc/" in cookie

    def test_a_form_post_answer_signs_in_and_keeps_the_name_from_the_user_field(
        self, make_container: ContainerFactory, provider: MockProvider
    ) -> None:
        container = make_container(oidc_settings=oidc_settings(provider.issuer, response_mode="form_post"))
        provider.set_user("apple-1", email="relay@privaterelay.example", email_verified="true")
        with TestClient(create_app(container), follow_redirects=False) as web:
            url = start_login(web)
            assert query(url)["response_mode"] == "form_post"
            # The mock answers in the query; a browser under form_post would POST the same fields.
            callback = provider.approve(url, sub="apple-1")
            user = json.dumps({"name": {"firstName": "Ann", "lastName": "Apple"}, "email": "relay@x"})
            response = web.post(urlsplit(callback).path, data={**query(callback), "user": user})
            assert response.status_code == 303, response.text
            assert signed_in(web)
        row = identity(container, "apple-1")
        assert row is not None
        assert row.display_name == "Ann Apple"
        assert row.email == "relay@privaterelay.example"


class TestKeyRotation:
    def test_a_token_signed_with_a_new_key_is_accepted_after_refetching_the_key_set(
        self, make_container: ContainerFactory
    ) -> None:
        port = free_port()
        with running_provider(port) as first:
            container = make_container(oidc_settings=oidc_settings(first.issuer))
            web = TestClient(create_app(container), follow_redirects=False)
            first.set_user("rot-1", email="rot@example.org", email_verified=True)
            assert sign_in(web, first, sub="rot-1").status_code == 303
        # The provider restarts with a new signing key (new kid) at the same address.
        with running_provider(port) as second:
            second.set_user("rot-2", email="rot2@example.org", email_verified=True)
            fresh = TestClient(web.app, follow_redirects=False)
            assert sign_in(fresh, second, sub="rot-2").status_code == 303
            assert signed_in(fresh)
        row = identity(container, "rot-2")
        assert row is not None
        assert isinstance(row.account_id, UUID)
