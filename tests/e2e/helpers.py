"""Small HTTP helpers for the end-to-end tests."""

from __future__ import annotations

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"


def sign_up(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Register an account and return bearer headers for it."""
    registered = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    token = client.post("/v1/auth/token", data={"username": email, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}
