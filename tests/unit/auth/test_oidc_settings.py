"""Unit tests of OIDC configuration and of reading Apple's `user` field."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tipwise.auth.oidc import apple_user_name
from tipwise.auth.oidc_settings import GOOGLE_ISSUER, OidcSettings


class TestOidcSettings:
    def test_providers_come_from_a_json_environment_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        providers = [
            {"name": "corp", "issuer": "https://id.example.org/realms/staff", "client_id": "tw", "client_secret": "s"},
            {
                "name": "apple",
                "title": "Apple",
                "issuer": "https://appleid.apple.com",
                "client_id": "org.example.tipwise",
                "scopes": ["openid", "email", "name"],
                "response_mode": "form_post",
                "token_endpoint_auth_method": "client_secret_post",
            },
        ]
        monkeypatch.setenv("TIPWISE_OIDC_PROVIDERS", json.dumps(providers))
        configured = OidcSettings().all_providers()
        assert [p.name for p in configured] == ["corp", "apple"]
        assert configured[0].display_name == "Corp"
        assert configured[0].client_secret.get_secret_value() == "s"
        assert configured[0].scopes == ("openid", "email", "profile")
        assert configured[1].response_mode == "form_post"
        assert configured[1].scopes == ("openid", "email", "name")

    def test_the_google_preset_needs_only_client_id_and_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TIPWISE_OIDC_GOOGLE_CLIENT_ID", "123.apps.googleusercontent.com")
        monkeypatch.setenv("TIPWISE_OIDC_GOOGLE_CLIENT_SECRET", "shh")
        (google,) = OidcSettings().all_providers()
        assert google.name == "google"
        assert google.display_name == "Google"
        assert google.issuer == GOOGLE_ISSUER
        assert google.client_id == "123.apps.googleusercontent.com"
        assert google.client_secret.get_secret_value() == "shh"
        assert "accounts.google.com" in google.extra_issuers

    def test_no_configuration_means_no_providers(self) -> None:
        assert OidcSettings().all_providers() == []

    def test_two_providers_with_one_name_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="repeated: google"):
            OidcSettings(
                google_client_id="id",
                providers=[{"name": "google", "issuer": "https://x.example", "client_id": "c"}],
            )

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("scopes", ["email"], "must include 'openid'"),
            ("issuer", "accounts.example.org", "http(s) URL"),
            ("name", "Has Spaces", "pattern"),
            ("response_mode", "fragment", "query"),
        ],
    )
    def test_a_bad_provider_is_refused_naming_the_field(self, field: str, value: object, message: str) -> None:
        provider = {"name": "corp", "issuer": "https://id.example.org", "client_id": "c", field: value}
        with pytest.raises(ValidationError) as caught:
            OidcSettings(providers=[provider])
        assert field in str(caught.value)
        assert message in str(caught.value)


class TestAppleUserName:
    def test_reads_first_and_last_name(self) -> None:
        raw = json.dumps({"name": {"firstName": "Ann", "lastName": "Apple"}, "email": "x@privaterelay.appleid.com"})
        assert apple_user_name(raw) == "Ann Apple"

    @pytest.mark.parametrize("raw", [None, "", "not json", "[]", '{"email": "x@y"}', '{"name": "Ann"}'])
    def test_anything_else_gives_no_name(self, raw: str | None) -> None:
        assert apple_user_name(raw) is None
