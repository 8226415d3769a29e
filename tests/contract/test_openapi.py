"""The committed OpenAPI document is the HTTP contract: it must match what the app serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tipwise.cli import openapi_document

COMMITTED = Path(__file__).parents[2] / "openapi.json"


def _committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(COMMITTED.read_text())
    return document


class TestOpenApiDocument:
    def test_committed_document_matches_the_app(self) -> None:
        assert openapi_document() == _committed(), "openapi.json is stale: run `make openapi` and commit the result"

    def test_served_document_is_the_committed_one(self, client: TestClient) -> None:
        assert client.get("/openapi.json").json() == _committed()

    def test_every_v1_route_but_registration_token_and_refresh_requires_a_bearer_token(self) -> None:
        open_routes = {"/v1/auth/register", "/v1/auth/token", "/v1/auth/refresh"}
        for path, operations in _committed()["paths"].items():
            if not path.startswith("/v1/") or path in open_routes:
                continue
            for method, operation in operations.items():
                assert operation.get("security") == [{"OAuth2PasswordBearer": []}], (method, path)

    def test_web_pages_stay_out_of_the_api_contract(self) -> None:
        paths = set(_committed()["paths"])
        assert not {"/", "/signin", "/signup", "/history", "/preferences", "/sessions"} & paths

    def test_token_and_refresh_answer_with_access_and_refresh_tokens(self) -> None:
        document = _committed()
        token_out = document["components"]["schemas"]["TokenOut"]
        assert set(token_out["required"]) == {"access_token", "expires_in", "refresh_token"}
        for path in ("/v1/auth/token", "/v1/auth/refresh"):
            ok = document["paths"][path]["post"]["responses"]["200"]
            assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TokenOut"}
        assert "429" in document["paths"]["/v1/auth/token"]["post"]["responses"]
