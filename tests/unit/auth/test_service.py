"""Unit tests of access tokens and email normalization."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt
import pytest

from tipwise.auth.contracts import Account, Principal, Role
from tipwise.auth.service import ALGORITHM, AUDIENCE, ISSUER, TokenService, normalize_email
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.errors import Unauthorized

SECRET = "unit-test-secret-with-enough-length-for-hs256"
TTL = timedelta(minutes=15)
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
USER_ID = UUID("0192f0c4-7a1e-7c3d-8b2a-3f4e5d6c7b8a")
SESSION_ID = UUID("0192f0c4-7a1e-7c3d-8b2a-000000000001")


def account(role: Role = Role.USER) -> Account:
    return Account(id=USER_ID, email="alice@example.com", role=role, created_at=START)


def tokens(clock: FakeClock, secret: str = SECRET) -> TokenService:
    return TokenService(secret=secret, ttl=TTL, clock=clock)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestTokenService:
    def test_issued_token_verifies_to_the_account_principal(self) -> None:
        service = tokens(FakeClock(START))

        principal = service.verify(service.issue(account(), session_id=SESSION_ID))

        assert principal == Principal(user_id=USER_ID, role=Role.USER, session_id=SESSION_ID)

    def test_operator_role_is_carried_by_the_token(self) -> None:
        service = tokens(FakeClock(START))

        assert service.verify(service.issue(account(Role.OPERATOR), session_id=SESSION_ID)).role is Role.OPERATOR

    def test_token_carries_issuer_audience_and_lifetime_from_the_clock(self) -> None:
        token = tokens(FakeClock(START)).issue(account(), session_id=SESSION_ID)

        claims = jwt.decode(
            token, SECRET, algorithms=[ALGORITHM], audience=AUDIENCE, options={"verify_exp": False, "verify_iat": False}
        )

        assert claims["sub"] == str(USER_ID)
        assert claims["sid"] == str(SESSION_ID)
        assert claims["iss"] == ISSUER
        assert claims["iat"] == int(START.timestamp())
        assert claims["exp"] == int((START + TTL).timestamp())

    def test_ttl_is_reported_in_seconds(self) -> None:
        assert tokens(FakeClock(START)).ttl_seconds == 900

    def test_token_is_valid_until_just_before_its_ttl(self) -> None:
        clock = FakeClock(START)
        service = tokens(clock)
        token = service.issue(account(), session_id=SESSION_ID)

        clock.advance(TTL - timedelta(seconds=1))

        assert service.verify(token).user_id == USER_ID

    def test_token_past_its_ttl_is_unauthorized(self) -> None:
        clock = FakeClock(START)
        service = tokens(clock)
        token = service.issue(account(), session_id=SESSION_ID)

        clock.advance(TTL)

        with pytest.raises(Unauthorized, match="expired"):
            service.verify(token)

    def test_a_token_verified_before_is_still_refused_once_it_expires(self) -> None:
        clock = FakeClock(START)
        service = tokens(clock)
        token = service.issue(account(), session_id=SESSION_ID)
        assert service.verify(token).user_id == USER_ID  # remembered as verified from now on

        clock.advance(TTL)

        with pytest.raises(Unauthorized, match="expired"):
            service.verify(token)

    def test_a_token_refused_once_is_refused_again(self) -> None:
        clock = FakeClock(START)
        forged = tokens(clock, secret="another-secret-that-is-also-long-enough").issue(account(), session_id=SESSION_ID)
        service = tokens(clock)

        for _ in range(2):
            with pytest.raises(Unauthorized, match="not valid"):
                service.verify(forged)

    def test_a_token_remembered_by_one_secret_does_not_verify_under_another(self) -> None:
        clock = FakeClock(START)
        service = tokens(clock)
        token = service.issue(account(), session_id=SESSION_ID)
        service.verify(token)

        with pytest.raises(Unauthorized, match="not valid"):
            tokens(clock, secret="another-secret-that-is-also-long-enough").verify(token)

    def test_token_issued_by_a_clock_ahead_of_the_wall_clock_verifies(self) -> None:
        # The service reads time only from its clock; a clock set in the future must not make
        # fresh tokens look "not yet valid".
        clock = FakeClock(datetime(2030, 6, 1, 12, 0, tzinfo=UTC))
        service = tokens(clock)

        assert service.verify(service.issue(account(), session_id=SESSION_ID)) == Principal(
            user_id=USER_ID, role=Role.USER, session_id=SESSION_ID
        )

    def test_token_signed_with_another_secret_is_unauthorized(self) -> None:
        clock = FakeClock(START)
        forged = tokens(clock, secret="another-secret-that-is-also-long-enough").issue(account(), session_id=SESSION_ID)

        with pytest.raises(Unauthorized, match="not valid"):
            tokens(clock).verify(forged)

    def test_tampered_token_is_unauthorized(self) -> None:
        service = tokens(FakeClock(START))
        header, _, signature = service.issue(account(), session_id=SESSION_ID).split(".")
        claims = {
            "sub": str(USER_ID),
            "sid": str(SESSION_ID),
            "role": "operator",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": int(START.timestamp()),
            "exp": int((START + TTL).timestamp()),
        }

        with pytest.raises(Unauthorized, match="not valid"):
            service.verify(f"{header}.{b64(claims)}.{signature}")

    def test_token_for_another_audience_is_unauthorized(self) -> None:
        now = int(START.timestamp())
        claims = {
            "sub": str(USER_ID),
            "sid": str(SESSION_ID),
            "iss": ISSUER,
            "aud": "someone-else",
            "iat": now,
            "exp": now + 60,
        }
        token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)

        with pytest.raises(Unauthorized, match="not valid"):
            tokens(FakeClock(START)).verify(token)

    def test_token_without_a_user_uuid_is_unauthorized(self) -> None:
        now = int(START.timestamp())
        claims = {
            "sub": "not-a-uuid",
            "sid": str(SESSION_ID),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 60,
        }
        token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)

        with pytest.raises(Unauthorized, match="not valid"):
            tokens(FakeClock(START)).verify(token)

    def test_token_without_a_session_id_is_unauthorized(self) -> None:
        # Tokens from before sessions existed carry no `sid`: they cannot be revoked, so they are refused.
        now = int(START.timestamp())
        claims = {"sub": str(USER_ID), "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
        token = jwt.encode(claims, SECRET, algorithm=ALGORITHM)

        with pytest.raises(Unauthorized, match="not valid"):
            tokens(FakeClock(START)).verify(token)

    @pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b.c", "Bearer xyz"])
    def test_garbage_is_unauthorized(self, garbage: str) -> None:
        with pytest.raises(Unauthorized, match="not valid"):
            tokens(FakeClock(START)).verify(garbage)

    def test_unauthorized_maps_to_http_401(self) -> None:
        with pytest.raises(Unauthorized) as excinfo:
            tokens(FakeClock(START)).verify("garbage")

        assert excinfo.value.problem()["status"] == 401
        assert excinfo.value.problem()["code"] == "unauthorized"


class TestNormalizeEmail:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("alice@example.com", "alice@example.com"),
            ("  Alice@Example.COM \n", "alice@example.com"),
            ("\tBOB@EXAMPLE.ORG", "bob@example.org"),
        ],
    )
    def test_email_is_trimmed_and_lowercased(self, raw: str, expected: str) -> None:
        assert normalize_email(raw) == expected
