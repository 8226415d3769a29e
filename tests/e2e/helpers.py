"""Small HTTP helpers for the end-to-end tests."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from tipwise.profile import CONSENT_WORDING_VERSION, Purpose

PASSWORD = "correct horse battery"


def sign_up(
    client: TestClient | httpx.Client, email: str, password: str = PASSWORD, *, consent: bool = True
) -> dict[str, str]:
    """Register an account, grant every purpose (unless `consent` is False), and return bearer headers for it."""
    registered = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    token = client.post("/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    if consent:
        granted = client.put(
            "/v1/me/consents",
            json={"wording_version": CONSENT_WORDING_VERSION, "purposes": dict.fromkeys(Purpose, True)},
            headers=headers,
        )
        assert granted.status_code == 200, granted.text
    return headers
