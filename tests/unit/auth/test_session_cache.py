"""Unit tests of the session check cache: how long a look at a session is trusted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from tipwise.auth.contracts import Principal, Role
from tipwise.auth.service import Live, SessionCache, hash_token

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SID = UUID("0192f0c4-7a1e-7c3d-8b2a-000000000001")
OTHER = UUID("0192f0c4-7a1e-7c3d-8b2a-000000000002")


def live(session_id: UUID = SID, expires_at: datetime = T0 + timedelta(days=30)) -> Live:
    principal = Principal(user_id=UUID(int=1), role=Role.USER, session_id=session_id)
    return Live(principal=principal, last_used_at=T0, expires_at=expires_at)


class TestSessionCache:
    def test_a_live_session_is_trusted_until_the_ttl_then_looked_up_again(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5))
        cache.put(SID, live(), now=T0, generation=cache.generation(SID))

        assert cache.get(SID, now=T0 + timedelta(seconds=4.9)) == (True, live())
        assert cache.get(SID, now=T0 + timedelta(seconds=5)) == (False, None)

    def test_an_ended_session_is_remembered_as_ended(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5))
        cache.put(SID, None, now=T0, generation=cache.generation(SID))

        assert cache.get(SID, now=T0) == (True, None)

    def test_never_trusted_past_the_sessions_own_expiry(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5))
        cache.put(SID, live(expires_at=T0 + timedelta(seconds=2)), now=T0, generation=cache.generation(SID))

        assert cache.get(SID, now=T0 + timedelta(seconds=2)) == (False, None)

    def test_forget_drops_an_entry_at_once(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5))
        cache.put(SID, live(), now=T0, generation=cache.generation(SID))

        cache.forget(SID)

        assert cache.get(SID, now=T0) == (False, None)

    def test_a_zero_ttl_caches_nothing(self) -> None:
        cache = SessionCache(ttl=timedelta(0))
        cache.put(SID, live(), now=T0, generation=cache.generation(SID))

        assert cache.get(SID, now=T0) == (False, None)

    def test_the_least_recently_used_entry_goes_first_when_full(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5), size=1)
        cache.put(SID, live(), now=T0, generation=cache.generation(SID))
        cache.put(OTHER, live(OTHER), now=T0, generation=cache.generation(OTHER))

        assert cache.get(SID, now=T0) == (False, None)
        assert cache.get(OTHER, now=T0) == (True, live(OTHER))

    def test_what_was_read_before_a_forget_is_not_kept(self) -> None:
        cache = SessionCache(ttl=timedelta(seconds=5))
        generation = cache.generation(SID)  # a check starts reading the session
        cache.forget(SID)  # a revocation commits meanwhile

        cache.put(SID, live(), now=T0, generation=generation)

        assert cache.get(SID, now=T0) == (False, None)
        cache.put(SID, None, now=T0, generation=cache.generation(SID))
        assert cache.get(SID, now=T0) == (True, None)


def test_tokens_are_stored_as_hex_sha256() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
