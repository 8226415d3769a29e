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

    def test_every_v1_route_but_registration_and_token_requires_a_bearer_token(self) -> None:
        open_routes = {"/v1/auth/register", "/v1/auth/token"}
        for path, operations in _committed()["paths"].items():
            if not path.startswith("/v1/") or path in open_routes:
                continue
            for method, operation in operations.items():
                assert operation.get("security") == [{"OAuth2PasswordBearer": []}], (method, path)

    def test_web_pages_stay_out_of_the_api_contract(self) -> None:
        paths = set(_committed()["paths"])
        assert not {"/", "/signin", "/signup", "/history", "/preferences"} & paths
