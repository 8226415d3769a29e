"""Sessions, refresh-token rotation, revocation and sign-in throttling, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from tests.conftest import FAST_AUTH
from tipwise.auth import AuthFacade, IssuedTokens, LoginMethod, Role
from tipwise.auth.models import LoginFailureRow, RefreshTokenRow, SessionRow
from tipwise.auth.service import hash_token
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database
from tipwise.kernel.errors import NotFound, TooManyRequests, Unauthorized

PASSWORD = "a long password"
SECRET = "integration-secret-key-with-enough-length"

FacadeFactory = Callable[..., AuthFacade]


@pytest.fixture
def make_facade(migrated: Database, clock: FakeClock) -> FacadeFactory:
    def factory(**settings: object) -> AuthFacade:
        return AuthFacade.create(
            db=migrated, settings=FAST_AUTH.model_copy(update=settings), secret_key=SECRET, clock=clock
        )

    return factory


@pytest.fixture
def auth(make_facade: FacadeFactory) -> AuthFacade:
    return make_facade()


def _signed_in(auth: AuthFacade, email: str = "ada@example.org", **client: str) -> IssuedTokens:
    auth.register(email=email, password=PASSWORD)
    return auth.login(email=email, password=PASSWORD, **client)


class TestSessions:
    def test_a_sign_in_starts_a_listed_session_its_token_stands_for(self, auth: AuthFacade, clock: FakeClock) -> None:
        issued = _signed_in(auth, user_agent="curl/8.5", ip="203.0.113.7")

        principal = auth.verify_token(token=issued.access_token)

        assert principal.user_id == issued.account_id
        assert principal.session_id == issued.session_id
        assert principal.role is Role.USER
        assert issued.expires_in == 900
        [listed] = auth.sessions(user_id=issued.account_id)
        assert listed.id == issued.session_id
        assert listed.method is LoginMethod.PASSWORD
        assert (listed.user_agent, listed.ip) == ("curl/8.5", "203.0.113.7")
        assert listed.created_at == listed.last_used_at == clock.now()
        assert listed.expires_at == clock.now() + timedelta(days=30)

    def test_refresh_tokens_are_stored_only_as_sha256(self, auth: AuthFacade, migrated: Database) -> None:
        issued = _signed_in(auth)
        with migrated.read() as session:
            stored = session.scalars(select(RefreshTokenRow.token_hash)).all()
        assert stored == [hash_token(issued.refresh_token)]
        assert issued.refresh_token not in stored

    def test_start_session_is_the_entry_for_other_sign_in_methods(self, auth: AuthFacade) -> None:
        account = auth.register(email="oidc@example.org", password=PASSWORD)

        issued = auth.start_session(account.id, method="oidc", user_agent="Firefox", ip="198.51.100.1")

        assert auth.verify_token(token=issued.access_token).session_id == issued.session_id
        assert [s.method for s in auth.sessions(user_id=account.id)] == [LoginMethod.OIDC]
        with pytest.raises(ValueError, match="carrier-pigeon"):
            auth.start_session(account.id, method="carrier-pigeon")
        with pytest.raises(NotFound):
            auth.start_session(issued.session_id, method="oidc")

    def test_each_refresh_rotates_and_the_old_token_stops_working(self, auth: AuthFacade, clock: FakeClock) -> None:
        first = _signed_in(auth)
        clock.advance(timedelta(minutes=20))
        with pytest.raises(Unauthorized, match="expired"):
            auth.verify_token(token=first.access_token)

        second = auth.refresh(refresh_token=first.refresh_token)
        third = auth.refresh(refresh_token=second.refresh_token)

        assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
        assert second.session_id == third.session_id == first.session_id
        assert auth.verify_token(token=third.access_token).user_id == first.account_id
        assert auth.sessions(user_id=first.account_id)[0].last_used_at == clock.now()

    def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(self, auth: AuthFacade) -> None:
        stolen = _signed_in(auth)
        legitimate = auth.refresh(refresh_token=stolen.refresh_token)

        with pytest.raises(Unauthorized, match="already used"):
            auth.refresh(refresh_token=stolen.refresh_token)

        with pytest.raises(Unauthorized, match="session has ended"):
            auth.verify_token(token=legitimate.access_token)
        with pytest.raises(Unauthorized, match="not valid"):
            auth.refresh(refresh_token=legitimate.refresh_token)
        assert auth.sessions(user_id=stolen.account_id) == []

    def test_unknown_refresh_tokens_are_refused(self, auth: AuthFacade) -> None:
        _signed_in(auth)
        with pytest.raises(Unauthorized, match="not valid"):
            auth.refresh(refresh_token="made-up")

    def test_concurrent_refreshes_of_one_token_never_both_succeed(self, auth: AuthFacade) -> None:
        issued = _signed_in(auth)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def refresh() -> None:
            barrier.wait()
            try:
                auth.refresh(refresh_token=issued.refresh_token)
                outcomes.append("rotated")
            except Unauthorized:
                outcomes.append("refused")

        threads = [threading.Thread(target=refresh) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert sorted(outcomes) == ["refused", "rotated"]
        # The second one was a reuse: the session is over for both.
        assert auth.sessions(user_id=issued.account_id) == []

    def test_a_session_ends_at_its_lifetime(self, auth: AuthFacade, clock: FakeClock) -> None:
        issued = _signed_in(auth)
        clock.advance(timedelta(days=29, hours=23, minutes=50))
        renewed = auth.refresh(refresh_token=issued.refresh_token)
        clock.advance(timedelta(minutes=10))  # the access token itself has 5 minutes left

        with pytest.raises(Unauthorized, match="session has ended"):
            auth.verify_token(token=renewed.access_token)
        with pytest.raises(Unauthorized, match="not valid"):
            auth.refresh(refresh_token=renewed.refresh_token)
        assert auth.session_principal(session_id=issued.session_id) is None

    def test_last_used_is_recorded_at_most_once_a_minute(self, auth: AuthFacade, clock: FakeClock) -> None:
        issued = _signed_in(auth)
        started = clock.now()
        clock.advance(timedelta(seconds=30))
        auth.verify_token(token=issued.access_token)
        assert auth.sessions(user_id=issued.account_id)[0].last_used_at == started
        clock.advance(timedelta(seconds=40))
        auth.verify_token(token=issued.access_token)
        assert auth.sessions(user_id=issued.account_id)[0].last_used_at == clock.now()


class TestCheckWithoutWriting:
    """`cached_principal`, as the bearer-token dependency calls it on the event loop."""

    def test_without_read_an_uncached_session_is_left_to_verify_token(self, auth: AuthFacade) -> None:
        issued = _signed_in(auth)

        assert auth.cached_principal(token=issued.access_token) is None

    def test_with_read_an_uncached_session_is_read_and_then_cached(self, auth: AuthFacade) -> None:
        issued = _signed_in(auth)

        principal = auth.cached_principal(token=issued.access_token, read=True)

        assert principal is not None
        assert (principal.user_id, principal.session_id) == (issued.account_id, issued.session_id)
        assert auth.cached_principal(token=issued.access_token) == principal

    def test_with_read_a_due_last_use_is_left_to_verify_token_which_records_it(
        self, auth: AuthFacade, clock: FakeClock
    ) -> None:
        issued = _signed_in(auth)
        started = clock.now()
        clock.advance(timedelta(seconds=70))

        assert auth.cached_principal(token=issued.access_token, read=True) is None
        assert auth.sessions(user_id=issued.account_id)[0].last_used_at == started
        auth.verify_token(token=issued.access_token)
        assert auth.sessions(user_id=issued.account_id)[0].last_used_at == clock.now()

    def test_with_read_a_session_revoked_by_another_process_is_refused(
        self, make_facade: FacadeFactory, clock: FakeClock
    ) -> None:
        here, there = make_facade(session_check_cache_seconds=5), make_facade(session_check_cache_seconds=5)
        issued = _signed_in(here)
        assert there.cached_principal(token=issued.access_token, read=True) is not None

        here.revoke_session(user_id=issued.account_id, session_id=issued.session_id)
        clock.advance(timedelta(seconds=5))

        with pytest.raises(Unauthorized, match="session has ended"):
            there.cached_principal(token=issued.access_token, read=True)

    def test_with_read_an_expired_token_is_refused(self, auth: AuthFacade, clock: FakeClock) -> None:
        issued = _signed_in(auth)
        auth.cached_principal(token=issued.access_token, read=True)

        clock.advance(timedelta(seconds=issued.expires_in))

        with pytest.raises(Unauthorized, match="expired"):
            auth.cached_principal(token=issued.access_token, read=True)


class TestRevocation:
    def test_a_revocation_committed_while_a_check_reads_the_session_is_not_forgotten(
        self, make_facade: FacadeFactory, migrated: Database
    ) -> None:
        auth = make_facade(session_check_cache_seconds=5)
        issued = _signed_in(auth)
        revoked: list[bool] = []

        def revoke_after_the_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if not revoked and "auth_session" in statement:
                revoked.append(True)
                auth.revoke_session(user_id=issued.account_id, session_id=issued.session_id)

        event.listen(migrated.read_engine, "after_cursor_execute", revoke_after_the_read)
        try:
            # This check read the session before the revocation committed: it may pass, but not be kept.
            auth.cached_principal(token=issued.access_token, read=True)
        finally:
            event.remove(migrated.read_engine, "after_cursor_execute", revoke_after_the_read)
        assert revoked

        with pytest.raises(Unauthorized, match="session has ended"):
            auth.cached_principal(token=issued.access_token, read=True)
        with pytest.raises(Unauthorized, match="session has ended"):
            auth.verify_token(token=issued.access_token)

    def test_a_check_during_an_erasure_does_not_keep_the_session_after_it_commits(
        self, make_facade: FacadeFactory, migrated: Database
    ) -> None:
        auth = make_facade(session_check_cache_seconds=5)
        issued = _signed_in(auth)

        with migrated.write() as session:
            auth.personal_data().erase(session, issued.account_id)
            # Not committed yet: the session still reads as live, and this check may pass.
            assert auth.cached_principal(token=issued.access_token, read=True) is not None

        with pytest.raises(Unauthorized, match="session has ended"):
            auth.cached_principal(token=issued.access_token, read=True)
        with pytest.raises(Unauthorized, match="session has ended"):
            auth.verify_token(token=issued.access_token)

    def test_revoking_a_session_stops_its_tokens_at_once(self, auth: AuthFacade) -> None:
        phone = _signed_in(auth)
        laptop = auth.login(email="ada@example.org", password=PASSWORD)
        auth.verify_token(token=phone.access_token)  # cached as live

        auth.revoke_session(user_id=phone.account_id, session_id=phone.session_id)

        with pytest.raises(Unauthorized, match="session has ended"):
            auth.verify_token(token=phone.access_token)
        with pytest.raises(Unauthorized):
            auth.refresh(refresh_token=phone.refresh_token)
        assert [s.id for s in auth.sessions(user_id=phone.account_id)] == [laptop.session_id]
        assert auth.verify_token(token=laptop.access_token).session_id == laptop.session_id

    def test_someone_elses_session_is_not_found_and_stays_live(self, auth: AuthFacade) -> None:
        alice = _signed_in(auth, "alice@example.org")
        mallory = _signed_in(auth, "mallory@example.org")

        with pytest.raises(NotFound):
            auth.revoke_session(user_id=mallory.account_id, session_id=alice.session_id)

        assert auth.verify_token(token=alice.access_token).user_id == alice.account_id

    def test_logout_ends_the_current_session_only(self, auth: AuthFacade) -> None:
        one = _signed_in(auth)
        two = auth.login(email="ada@example.org", password=PASSWORD)

        auth.logout(principal=auth.verify_token(token=one.access_token))

        with pytest.raises(Unauthorized):
            auth.verify_token(token=one.access_token)
        assert auth.verify_token(token=two.access_token).user_id == two.account_id

    def test_another_process_sees_a_revocation_within_the_cache_window(
        self, make_facade: FacadeFactory, clock: FakeClock
    ) -> None:
        # Two facades on one database stand for two app processes of the scaled topology.
        here, there = make_facade(session_check_cache_seconds=5), make_facade(session_check_cache_seconds=5)
        issued = _signed_in(here)
        there.verify_token(token=issued.access_token)

        here.revoke_session(user_id=issued.account_id, session_id=issued.session_id)

        with pytest.raises(Unauthorized):
            here.verify_token(token=issued.access_token)
        assert there.verify_token(token=issued.access_token).session_id == issued.session_id  # within the bound
        clock.advance(timedelta(seconds=5))
        with pytest.raises(Unauthorized, match="session has ended"):
            there.verify_token(token=issued.access_token)

    def test_the_role_comes_from_the_account_not_the_token(self, auth: AuthFacade, clock: FakeClock) -> None:
        issued = _signed_in(auth, "ops@example.org")
        auth.set_role(email="ops@example.org", role=Role.OPERATOR)
        clock.advance(timedelta(seconds=5))

        assert auth.verify_token(token=issued.access_token).role is Role.OPERATOR

    def test_purge_deletes_sessions_a_week_after_they_ended(
        self, auth: AuthFacade, migrated: Database, clock: FakeClock
    ) -> None:
        ended = _signed_in(auth)
        live = auth.login(email="ada@example.org", password=PASSWORD)
        auth.revoke_session(user_id=ended.account_id, session_id=ended.session_id)
        clock.advance(timedelta(days=8))

        auth.purge()

        with migrated.read() as session:
            assert session.scalars(select(SessionRow.id)).all() == [live.session_id]
            assert session.scalar(select(func.count()).select_from(RefreshTokenRow)) == 1


class TestLoginThrottle:
    def _fail(self, auth: AuthFacade, email: str, times: int, ip: str = "192.0.2.1") -> None:
        for _ in range(times):
            with pytest.raises(Unauthorized):
                auth.login(email=email, password="wrong password", ip=ip)

    def test_after_five_failures_even_the_right_password_waits_out_the_window(
        self, auth: AuthFacade, clock: FakeClock
    ) -> None:
        auth.register(email="ada@example.org", password=PASSWORD)
        self._fail(auth, "ada@example.org", 1)
        clock.advance(timedelta(minutes=5))
        self._fail(auth, "ada@example.org", 4)

        with pytest.raises(TooManyRequests) as refused:
            auth.login(email="ADA@example.org", password=PASSWORD, ip="198.51.100.9")
        assert refused.value.retry_after == 600  # the first failure leaves the 15-minute window then
        assert refused.value.headers == {"Retry-After": "600"}
        assert refused.value.problem()["status"] == 429

        clock.advance(timedelta(seconds=600))
        assert auth.login(email="ada@example.org", password=PASSWORD).account_id is not None

    def test_a_successful_sign_in_resets_the_email_count(self, auth: AuthFacade) -> None:
        auth.register(email="ada@example.org", password=PASSWORD)
        self._fail(auth, "ada@example.org", 4)
        auth.login(email="ada@example.org", password=PASSWORD)
        self._fail(auth, "ada@example.org", 4)

        assert auth.login(email="ada@example.org", password=PASSWORD).account_id is not None

    def test_one_address_trying_many_emails_is_stopped_and_others_are_not(
        self, make_facade: FacadeFactory, migrated: Database
    ) -> None:
        auth = make_facade(login_failures_per_ip=6)
        auth.register(email="ada@example.org", password=PASSWORD)
        for n in range(6):
            self._fail(auth, f"guess{n}@example.org", 1, ip="192.0.2.66")

        with pytest.raises(TooManyRequests):
            auth.login(email="ada@example.org", password=PASSWORD, ip="192.0.2.66")
        assert auth.login(email="ada@example.org", password=PASSWORD, ip="192.0.2.67").account_id is not None
        with migrated.read() as session:
            keys = session.scalars(select(LoginFailureRow.key_hash)).all()
        assert all(len(key) == 64 and "@" not in key for key in keys)

    def test_failures_of_unknown_emails_count_too(self, auth: AuthFacade) -> None:
        self._fail(auth, "nobody@example.org", 5)
        with pytest.raises(TooManyRequests):
            auth.login(email="nobody@example.org", password="wrong password")
