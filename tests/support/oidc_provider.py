"""A real OpenID Connect provider for tests: `oidc-provider-mock` served on a free local port.

The provider runs in a thread (werkzeug), so the app under test talks to it over real HTTP: discovery,
JWKS, authorization, token endpoint. A thin WSGI layer in front of it can rewrite the ID token in the
next token response, to play an attacker who altered or swapped it on its way.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import oidc_provider_mock
import werkzeug.serving
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WerkzeugResponse

from tests.support.network import free_port

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class TokenRewriter:
    """WSGI middleware: pass everything through, but let a test rewrite the ID token of token responses."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self.rewrite: Callable[[str], str] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rewrite = self.rewrite
        if environ.get("PATH_INFO") != "/oauth2/token" or rewrite is None:
            return self._app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[[bytes], None]:
            captured.update(status=status, headers=headers)
            return lambda _data: None

        result = self._app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        answer = json.loads(body)
        if "id_token" in answer:
            answer["id_token"] = rewrite(answer["id_token"])
        new_body = json.dumps(answer).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], [*headers, ("Content-Length", str(len(new_body)))])
        return [new_body]


@dataclass
class MockProvider:
    """A running `oidc-provider-mock`, reachable at `issuer`."""

    issuer: str
    rewriter: TokenRewriter
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    def set_user(self, sub: str, **claims: object) -> None:
        """Give the user `sub` these claims (email, email_verified, name, ...)."""
        response = self.http.put(f"{self.issuer}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text

    def approve(self, authorize_url: str, *, sub: str) -> str:
        """Sign `sub` in on the provider's authorization page; return the callback URL it redirects to."""
        response = self.http.post(authorize_url, data={"sub": sub})
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def deny(self, authorize_url: str) -> str:
        """Press "Deny" on the provider's authorization page; return the callback URL it redirects to."""
        response = self.http.post(authorize_url, data={"action": "deny"})
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def issue_id_token(self, *, client_id: str, sub: str, nonce: str) -> str:
        """Run a whole code flow as another client would, and return the genuine ID token it gets."""
        redirect_uri = "http://127.0.0.1:9/elsewhere"
        callback = self.approve(
            f"{self.issuer}/oauth2/authorize?"
            + httpx.QueryParams(
                client_id=client_id,
                redirect_uri=redirect_uri,
                response_type="code",
                scope="openid email profile",
                state="someone-elses-state",
                nonce=nonce,
            ).__str__(),
            sub=sub,
        )
        code = parse_qs(urlsplit(callback).query)["code"][0]
        response = self.http.post(
            f"{self.issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=(client_id, "any-secret"),
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["id_token"]
        return token


def flip_signature_byte(token: str) -> str:
    """Return `token` with one bit of its signature flipped, as an attacker's edit would leave it."""
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return ".".join([header, payload, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()])


@contextmanager
def serving(app: WsgiApp, port: int | None = None) -> Iterator[str]:
    """Serve the WSGI `app` on 127.0.0.1 in a thread until the block ends; yield its base URL."""
    port = port or free_port()
    server = werkzeug.serving.make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def running_provider(
    port: int | None = None, *, token_max_age: timedelta = timedelta(hours=1)
) -> Iterator[MockProvider]:
    """Serve a fresh `oidc-provider-mock` (new signing key, no users) on 127.0.0.1 until the block ends."""
    rewriter = TokenRewriter(oidc_provider_mock.app(require_nonce=True, access_token_max_age=token_max_age))
    with serving(rewriter, port) as issuer:
        provider = MockProvider(issuer=issuer, rewriter=rewriter)
        try:
            yield provider
        finally:
            provider.http.close()


class KeyServer:
    """A bare issuer for tests that need tokens no real provider would sign: discovery, a JWKS, a signer.

    It serves `/.well-known/openid-configuration` and `/jwks` (counting fetches); the test decides which
    keys are published and signs whatever claims it wants with them.
    """

    def __init__(self) -> None:
        self.issuer = ""
        self.discovered_issuer: str | None = None
        self.keys: list[RSAKey] = [RSAKey.generate_key(2048, auto_kid=True)]
        self.jwks_fetches = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response: Iterable[bytes] = self._answer(Request(environ))(environ, start_response)
        return response

    def _answer(self, request: Request) -> WerkzeugResponse:
        if request.path == "/.well-known/openid-configuration":
            document = {
                "issuer": self.discovered_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            }
            return WerkzeugResponse(json.dumps(document), content_type="application/json")
        if request.path == "/jwks":
            self.jwks_fetches += 1
            keys = {"keys": [key.as_dict(private=False) for key in self.keys]}
            return WerkzeugResponse(json.dumps(keys), content_type="application/json")
        return WerkzeugResponse("not found", status=404)

    def sign(self, claims: dict[str, object], *, key: RSAKey | None = None, kid: str | None = "default") -> str:
        """Return an RS256 JWT of `claims`, signed with `key` (default: the first published key)."""
        key = key or self.keys[0]
        header: dict[str, object] = {"alg": "RS256"}
        if kid is not None:
            header["kid"] = key.kid if kid == "default" else kid
        return jwt.encode(header, claims, key)


@contextmanager
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    with serving(server) as issuer:
        server.issuer = issuer
        yield server
