"""ID token validation on tokens no honest provider would sign, from a local issuer the test controls.

The end-to-end cases (tampered, foreign, expired, replayed) run against `oidc-provider-mock` in
test_oidc.py; these cover what that provider cannot be made to produce: rotated key ids, forbidden
algorithms, several audiences, a foreign issuer, a token from the future, a lying discovery document.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tests.support.network import free_port
from tests.support.oidc_provider import KeyServer, key_server
from tipwise.auth.oidc import OidcProvider, OidcProviderUnavailable, OidcTokenRejected
from tipwise.auth.oidc_settings import OidcProviderConfig
from tipwise.kernel.clock import FakeClock

CLIENT_ID = "tipwise"
NONCE = "the-nonce-of-this-attempt"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def issuer() -> Iterator[KeyServer]:
    with key_server() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def provider_for(issuer: str, clock: FakeClock, *, min_refresh: int = 30) -> OidcProvider:
    config = OidcProviderConfig(name="local", issuer=issuer, client_id=CLIENT_ID)
    return OidcProvider(config=config, clock=clock, clock_skew_seconds=60, jwks_min_refresh_seconds=min_refresh)


@pytest.fixture
def provider(issuer: KeyServer, clock: FakeClock) -> OidcProvider:
    return provider_for(issuer.issuer, clock)


def claims(issuer: KeyServer, **overrides: object) -> dict[str, object]:
    now = int(NOW.timestamp())
    base: dict[str, object] = {
        "iss": issuer.issuer,
        "sub": "person-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 600,
        "nonce": NONCE,
        "email": "person@example.org",
        "email_verified": True,
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def refused(provider: OidcProvider, token: str, reason: str) -> str:
    with pytest.raises(OidcTokenRejected) as caught:
        provider.validate_id_token(token, nonce=NONCE)
    assert caught.value.reason == reason
    return caught.value.detail


class TestAcceptedTokens:
    def test_a_valid_token_yields_its_identity(self, provider: OidcProvider, issuer: KeyServer) -> None:
        identity = provider.validate_id_token(issuer.sign(claims(issuer, name="Pat")), nonce=NONCE)
        assert identity.issuer == issuer.issuer
        assert identity.subject == "person-1"
        assert identity.email == "person@example.org"
        assert identity.email_verified is True
        assert identity.name == "Pat"

    def test_apples_string_true_counts_as_a_verified_email(self, provider: OidcProvider, issuer: KeyServer) -> None:
        token = issuer.sign(claims(issuer, email_verified="true"))
        assert provider.validate_id_token(token, nonce=NONCE).email_verified is True
        token = issuer.sign(claims(issuer, email_verified="false"))
        assert provider.validate_id_token(token, nonce=NONCE).email_verified is False

    def test_several_audiences_pass_when_this_client_is_the_authorized_party(
        self, provider: OidcProvider, issuer: KeyServer
    ) -> None:
        token = issuer.sign(claims(issuer, aud=[CLIENT_ID, "other"], azp=CLIENT_ID))
        assert provider.validate_id_token(token, nonce=NONCE).subject == "person-1"

    def test_an_expiry_within_the_clock_skew_still_passes(
        self, provider: OidcProvider, issuer: KeyServer, clock: FakeClock
    ) -> None:
        token = issuer.sign(claims(issuer))
        clock.advance(timedelta(seconds=600 + 30))
        assert provider.validate_id_token(token, nonce=NONCE).subject == "person-1"


class TestKeyRotation:
    def test_an_unknown_kid_refetches_the_key_set_once(
        self, provider: OidcProvider, issuer: KeyServer, clock: FakeClock
    ) -> None:
        provider.validate_id_token(issuer.sign(claims(issuer)), nonce=NONCE)
        assert issuer.jwks_fetches == 1
        rotated = RSAKey.generate_key(2048, auto_kid=True)
        issuer.keys.append(rotated)
        clock.advance(timedelta(minutes=1))
        token = issuer.sign(claims(issuer, exp=int(NOW.timestamp()) + 3600), key=rotated)
        assert provider.validate_id_token(token, nonce=NONCE).subject == "person-1"
        assert issuer.jwks_fetches == 2
        # The new key is cached now: no further fetch.
        provider.validate_id_token(token, nonce=NONCE)
        assert issuer.jwks_fetches == 2

    def test_unknown_kids_do_not_refetch_more_often_than_allowed(
        self, provider: OidcProvider, issuer: KeyServer
    ) -> None:
        provider.validate_id_token(issuer.sign(claims(issuer)), nonce=NONCE)
        stranger = RSAKey.generate_key(2048, auto_kid=True)
        detail = refused(provider, issuer.sign(claims(issuer), key=stranger), "unknown_key")
        assert "does not publish" in detail
        assert issuer.jwks_fetches == 1


class TestRefusedTokens:
    def test_a_token_signed_by_someone_else_with_the_providers_kid_is_refused(
        self, provider: OidcProvider, issuer: KeyServer
    ) -> None:
        forger = RSAKey.generate_key(2048)
        token = issuer.sign(claims(issuer), key=forger, kid=issuer.keys[0].kid)
        assert "signature does not verify" in refused(provider, token, "bad_signature")

    def test_an_unsigned_token_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        def b64(value: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        token = f"{b64({'alg': 'none'})}.{b64(claims(issuer))}."
        refused(provider, token, "bad_algorithm")

    def test_a_token_signed_with_a_shared_secret_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        # HS256 keyed with something public (an RSA modulus, the client id) is the classic confusion attack.
        token = jwt.encode({"alg": "HS256"}, claims(issuer), OctKey.import_key(CLIENT_ID.encode() * 4))
        refused(provider, token, "bad_algorithm")

    def test_a_token_from_another_issuer_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        token = issuer.sign(claims(issuer, iss="https://evil.example"))
        assert "https://evil.example" in refused(provider, token, "wrong_issuer")

    def test_a_token_for_another_audience_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        refused(provider, issuer.sign(claims(issuer, aud="another-app")), "wrong_audience")

    def test_several_audiences_without_this_client_as_authorized_party_are_refused(
        self, provider: OidcProvider, issuer: KeyServer
    ) -> None:
        refused(provider, issuer.sign(claims(issuer, aud=[CLIENT_ID, "other"])), "wrong_audience")
        refused(provider, issuer.sign(claims(issuer, aud=[CLIENT_ID, "other"], azp="other")), "wrong_audience")

    def test_an_expired_token_is_refused(self, provider: OidcProvider, issuer: KeyServer, clock: FakeClock) -> None:
        token = issuer.sign(claims(issuer))
        clock.advance(timedelta(seconds=600 + 61))
        assert "expired at 2026-11-25T12:10:00+00:00" in refused(provider, token, "expired")

    def test_a_token_issued_in_the_future_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        token = issuer.sign(claims(issuer, iat=int(NOW.timestamp()) + 300))
        refused(provider, token, "not_yet_valid")

    def test_a_token_without_expiry_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        refused(provider, issuer.sign(claims(issuer, exp=None)), "malformed")

    def test_a_token_with_another_nonce_is_refused(self, provider: OidcProvider, issuer: KeyServer) -> None:
        refused(provider, issuer.sign(claims(issuer, nonce="other")), "nonce_mismatch")
        refused(provider, issuer.sign(claims(issuer, nonce=None)), "nonce_mismatch")

    def test_garbage_is_refused(self, provider: OidcProvider) -> None:
        refused(provider, "not-a-jwt", "malformed")


class TestDiscovery:
    def test_a_discovery_document_naming_another_issuer_is_refused(self, issuer: KeyServer, clock: FakeClock) -> None:
        issuer.discovered_issuer = "https://impostor.example"
        with pytest.raises(OidcProviderUnavailable) as caught:
            provider_for(issuer.issuer, clock).metadata()
        assert caught.value.reason == "bad_discovery"
        assert "impostor" in caught.value.detail

    def test_an_unreachable_provider_is_reported_as_unavailable(self, clock: FakeClock) -> None:
        provider = provider_for(f"http://127.0.0.1:{free_port()}", clock)
        with pytest.raises(OidcProviderUnavailable) as caught:
            provider.authorization_url(redirect_uri="http://app/cb", state="s", nonce="n", code_verifier="v" * 43)
        assert caught.value.reason == "provider_unreachable"
        assert caught.value.status == 502
