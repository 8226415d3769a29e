"""OpenID Connect, relying-party side: discovery, the authorization request, the code exchange, ID tokens.

The authorization code flow with PKCE (S256), `state` and `nonce`, as OpenID Connect Core 1.0 section 3.1
describes it. Authlib builds the protocol messages (authorization URL, PKCE challenge, client authentication
at the token endpoint); joserfc (Authlib's JOSE library) verifies the ID token's signature against the
provider's JWKS; the claims are checked here, one by one, so each refusal can say what was wrong.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import Key, KeySet
from joserfc.jws import extract_compact

from tipwise.auth.oidc_settings import OidcProviderConfig, OidcSettings
from tipwise.kernel.clock import Clock
from tipwise.kernel.errors import TipwiseError

# ID tokens must be signed with the provider's private key: no "none", no shared-secret HMAC.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DISCOVERY_PATH = "/.well-known/openid-configuration"


class OidcLoginFailed(TipwiseError):
    """A sign-in through an OIDC provider was refused; `reason` says why, in one stable word."""

    status = 400
    code = "oidc_login_failed"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail, extra={"reason": reason})
        self.reason = reason


class OidcTokenRejected(OidcLoginFailed):
    """The provider's ID token did not pass validation."""

    status = 401
    code = "oidc_token_rejected"


class OidcProviderUnavailable(OidcLoginFailed):
    """The provider could not be reached or answered something unusable."""

    status = 502
    code = "oidc_provider_unavailable"


@dataclass(frozen=True, kw_only=True)
class ProviderMetadata:
    """What discovery tells about a provider (OpenID Connect Discovery 1.0, section 3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class VerifiedIdentity:
    """The claims of an ID token that passed every check."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def new_secret() -> str:
    """Return a fresh random value for `state`, `nonce` or a PKCE code verifier (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


class OidcProvider:
    """One configured provider: builds its authorization URLs, redeems codes, validates its ID tokens.

    Discovery and the key set are fetched on first use and cached; an ID token signed with a key id not in
    the cached set triggers one refetch (providers rotate keys), at most every `jwks_min_refresh_seconds`.
    """

    def __init__(
        self,
        *,
        config: OidcProviderConfig,
        clock: Clock,
        clock_skew_seconds: int = 60,
        jwks_min_refresh_seconds: int = 30,
        http_timeout_seconds: float = 10.0,
    ) -> None:
        self.config = config
        self._clock = clock
        self._skew = clock_skew_seconds
        self._jwks_min_refresh = jwks_min_refresh_seconds
        self._timeout = http_timeout_seconds
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def title(self) -> str:
        return self.config.display_name

    # -- discovery and keys ------------------------------------------------------------------------

    def metadata(self) -> ProviderMetadata:
        """Return the provider's discovery document (fetched once); raises `OidcProviderUnavailable`."""
        with self._lock:
            if self._metadata is None:
                self._metadata = self._discover()
            return self._metadata

    def _discover(self) -> ProviderMetadata:
        url = self.config.issuer.rstrip("/") + DISCOVERY_PATH
        document = self._get_json(url, what="discovery document")
        try:
            metadata = ProviderMetadata(
                issuer=str(document["issuer"]),
                authorization_endpoint=str(document["authorization_endpoint"]),
                token_endpoint=str(document["token_endpoint"]),
                jwks_uri=str(document["jwks_uri"]),
                algorithms=frozenset(document.get("id_token_signing_alg_values_supported") or ["RS256"]),
            )
        except KeyError as exc:
            raise OidcProviderUnavailable(
                f"{self.title}'s discovery document lacks {exc.args[0]!r}", reason="bad_discovery"
            ) from exc
        # Discovery section 4.3: the document must name exactly the issuer it was fetched for.
        if metadata.issuer != self.config.issuer:
            raise OidcProviderUnavailable(
                f"{self.title}'s discovery document names the issuer {metadata.issuer!r}, "
                f"not the configured {self.config.issuer!r}",
                reason="bad_discovery",
            )
        return metadata

    def _verified_claims(self, id_token: str, metadata: ProviderMetadata, kid: str | None, alg: str) -> dict[str, Any]:
        for refetch in (False, True):
            key = self._key_for(metadata, kid, alg, refetch=refetch)
            try:
                claims: dict[str, Any] = jwt.decode(id_token, key, algorithms=[alg]).claims
            except BadSignatureError as exc:
                # A token without kid may be signed with a key rotated in since the last fetch: refetch once.
                if refetch or kid is not None:
                    raise OidcTokenRejected(
                        f"the ID token's signature does not verify: it was altered or not signed by {self.title}",
                        reason="bad_signature",
                    ) from exc
            except JoseError as exc:
                raise OidcTokenRejected("the ID token could not be read", reason="malformed") from exc
            else:
                return claims
        raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover

    def _key_for(self, metadata: ProviderMetadata, kid: str | None, alg: str, *, refetch: bool = False) -> Key:
        with self._lock:
            key = self._cached_key(kid, alg)
            now = self._clock.now()
            fetched_long_ago = (
                self._keys_fetched_at is None or (now - self._keys_fetched_at).total_seconds() >= self._jwks_min_refresh
            )
            if (key is None or refetch) and fetched_long_ago:
                document = self._get_json(metadata.jwks_uri, what="key set")
                try:
                    self._keys = KeySet.import_key_set({"keys": _usable_keys(document)})
                except (JoseError, ValueError, TypeError) as exc:
                    raise OidcProviderUnavailable(
                        f"{self.title}'s key set could not be read", reason="bad_jwks"
                    ) from exc
                self._keys_fetched_at = now
                key = self._cached_key(kid, alg)
        if key is None:
            raise OidcTokenRejected(
                f"the ID token is signed with a key {self.title} does not publish (kid {kid!r})",
                reason="unknown_key",
            )
        return key

    def _cached_key(self, kid: str | None, alg: str) -> Key | None:
        if self._keys is None:
            return None
        candidates = [
            key
            for key in self._keys.keys
            if (kid is None or key.kid == kid) and key.get("alg") in (None, alg) and key.get("use") in (None, "sig")
        ]
        # Without a kid the token names no key: accept only an unambiguous set.
        return candidates[0] if len(candidates) == 1 else None

    def _get_json(self, url: str, *, what: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcProviderUnavailable(
                f"could not read {self.title}'s {what} ({type(exc).__name__}); try again later",
                reason="provider_unreachable",
            ) from exc
        if not isinstance(document, dict):
            raise OidcProviderUnavailable(f"{self.title}'s {what} is not a JSON object", reason="bad_discovery")
        return document

    # -- the flow ----------------------------------------------------------------------------------

    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Return the URL that sends the browser to the provider (code flow, PKCE S256, state, nonce)."""
        metadata = self.metadata()
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            self.config.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.config.scopes),
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
            response_mode="form_post" if self.config.response_mode == "form_post" else None,
        )
        return url

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Redeem an authorization code at the token endpoint and return the ID token it yields."""
        metadata = self.metadata()
        body = urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        client_auth = ClientAuth(
            self.config.client_id,
            self.config.client_secret.get_secret_value(),
            self.config.token_endpoint_auth_method,
        )
        url, headers, body = client_auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise OidcProviderUnavailable(
                f"could not reach {self.title} to finish signing in ({type(exc).__name__}); try again",
                reason="provider_unreachable",
            ) from exc
        answer = _json_object(response)
        if response.status_code != 200:
            error = str(answer.get("error") or f"HTTP {response.status_code}")
            description = answer.get("error_description")
            raise OidcLoginFailed(
                f"{self.title} refused to redeem the sign-in code: {error}"
                + (f" ({description})" if description else ""),
                reason="code_exchange_failed",
            )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OidcLoginFailed(f"{self.title} answered without an ID token", reason="no_id_token")
        return id_token

    def validate_id_token(self, id_token: str, *, nonce: str) -> VerifiedIdentity:
        """Check the ID token's signature (JWKS), iss, aud/azp, exp, iat, nbf and nonce; return its identity."""
        metadata = self.metadata()
        try:
            header = extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise OidcTokenRejected("the ID token is not a well-formed signed JWT", reason="malformed") from exc
        alg = header.get("alg")
        allowed = metadata.algorithms & ASYMMETRIC_ALGORITHMS
        if not isinstance(alg, str) or alg not in allowed:
            raise OidcTokenRejected(
                f"the ID token is signed with {alg!r}, which {self.title} does not announce or Tipwise refuses",
                reason="bad_algorithm",
            )
        kid = header.get("kid")
        claims = self._verified_claims(id_token, metadata, kid if isinstance(kid, str) else None, alg)
        self._check_claims(claims, nonce=nonce)
        return VerifiedIdentity(
            issuer=self.config.issuer,
            subject=claims["sub"],
            email=_email(claims.get("email")),
            email_verified=_truthy(claims.get("email_verified")),
            name=claims["name"] if isinstance(claims.get("name"), str) else None,
        )

    def _check_claims(self, claims: Mapping[str, Any], *, nonce: str) -> None:
        issuers = {self.config.issuer, *self.config.extra_issuers}
        if claims.get("iss") not in issuers:
            raise OidcTokenRejected(
                f"the ID token was issued by {claims.get('iss')!r}, not by {self.config.issuer!r}",
                reason="wrong_issuer",
            )
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        client_id = self.config.client_id
        if not isinstance(audiences, list) or client_id not in audiences:
            raise OidcTokenRejected(
                f"the ID token is meant for another application (aud {audience!r}), not this one",
                reason="wrong_audience",
            )
        # Core 3.1.3.7: with several audiences the authorized party must be this client.
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != client_id:
            raise OidcTokenRejected(
                f"the ID token was handed to another application (azp {azp!r}), not this one",
                reason="wrong_audience",
            )
        now = self._clock.now().timestamp()
        exp, iat, nbf = _numeric(claims, "exp"), _numeric(claims, "iat"), _numeric(claims, "nbf", default=0)
        if now >= exp + self._skew:
            expired_at = datetime.fromtimestamp(exp, UTC).isoformat(timespec="seconds")
            raise OidcTokenRejected(f"the ID token expired at {expired_at}; sign in again", reason="expired")
        if iat > now + self._skew or nbf > now + self._skew:
            raise OidcTokenRejected(
                "the ID token is not valid yet (issued in the future: check this server's clock)",
                reason="not_yet_valid",
            )
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not secrets.compare_digest(sent.encode(), nonce.encode()):
            raise OidcTokenRejected(
                "the ID token belongs to another sign-in attempt (nonce mismatch)", reason="nonce_mismatch"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 0 < len(subject) <= 255:
            raise OidcTokenRejected("the ID token names no valid subject", reason="malformed")


@dataclass(frozen=True, kw_only=True)
class OidcProviderInfo:
    """A provider as the sign-in page lists it."""

    name: str
    title: str


@dataclass(frozen=True, kw_only=True)
class OidcStart:
    """Where to send the browser, and the state its answer must carry back (bind it to the browser)."""

    url: str
    state: str
    form_post: bool
    ttl_seconds: int


class OidcProviders:
    """The providers configured for this Tipwise, by name, and how long a started sign-in stays valid."""

    def __init__(
        self, providers: list[OidcProvider], *, login_ttl: timedelta, public_base_url: str | None = None
    ) -> None:
        self._by_name = {provider.name: provider for provider in providers}
        self.login_ttl = login_ttl
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None

    @classmethod
    def from_settings(cls, settings: OidcSettings, *, clock: Clock) -> OidcProviders:
        return cls(
            [
                OidcProvider(
                    config=config,
                    clock=clock,
                    clock_skew_seconds=settings.clock_skew_seconds,
                    jwks_min_refresh_seconds=settings.jwks_min_refresh_seconds,
                    http_timeout_seconds=settings.http_timeout_seconds,
                )
                for config in settings.all_providers()
            ],
            login_ttl=timedelta(seconds=settings.login_ttl_seconds),
            public_base_url=settings.public_base_url,
        )

    def get(self, name: str) -> OidcProvider | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[OidcProvider]:
        return iter(self._by_name.values())


def apple_user_name(raw: str | None) -> str | None:
    """Return the name in Apple's `user` form field (sent on the first sign-in only), or None."""
    if not raw:
        return None
    try:
        user = json.loads(raw)
    except ValueError:
        return None
    name = user.get("name") if isinstance(user, dict) else None
    if not isinstance(name, dict):
        return None
    parts = [name.get("firstName"), name.get("lastName")]
    full = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    return full[:200] or None


def _usable_keys(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the signing keys of a JWKS document, skipping encryption keys and key types joserfc cannot read."""
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError("a JWKS has a 'keys' list")
    return [key for key in keys if isinstance(key, dict) and key.get("use") in (None, "sig")]


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except (json.JSONDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _numeric(claims: Mapping[str, Any], name: str, *, default: float | None = None) -> float:
    value = claims.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise OidcTokenRejected(f"the ID token's {name!r} is missing or not a number", reason="malformed")
    return float(value)


def _email(value: object) -> str | None:
    # RFC 5321 caps an address at 320 characters; anything else is not an address to sign in with.
    return value if isinstance(value, str) and 3 <= len(value) <= 320 and "@" in value else None


def _truthy(value: object) -> bool:
    # Apple sends email_verified as the string "true".
    return value is True or value == "true"
