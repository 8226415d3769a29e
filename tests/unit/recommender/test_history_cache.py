"""The per-person history cache: what a committed decision adds to a cached entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from tipwise.advice import Category
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.service import HistoryCache

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _show(tip_id: str, at: datetime = AT) -> PastShow:
    return PastShow(tip_id=tip_id, category=Category.FOCUS, decided_at=at)


def _cache_with(*shows: PastShow) -> tuple[HistoryCache, UUID]:
    cache = HistoryCache(seconds=60)
    user = uuid4()
    cache.put(user, list(shows), generation=cache.generation(user))
    return cache, user


class TestShown:
    def test_a_committed_show_is_added_to_the_cached_entry(self) -> None:
        cache, user = _cache_with(_show("a", AT - timedelta(hours=1)))
        cache.shown(user, _show("b"))
        assert cache.get(user) == [_show("a", AT - timedelta(hours=1)), _show("b")]

    def test_a_show_a_racing_read_already_cached_is_not_added_twice(self) -> None:
        cache, user = _cache_with(_show("a", AT - timedelta(hours=1)), _show("b"))
        cache.shown(user, _show("b"))
        assert cache.get(user) == [_show("a", AT - timedelta(hours=1)), _show("b")]

    def test_another_tip_of_the_same_instant_or_the_same_tip_at_another_is_added(self) -> None:
        cache, user = _cache_with(_show("b"))
        cache.shown(user, _show("c"))
        cache.shown(user, _show("b", AT + timedelta(seconds=1)))
        assert cache.get(user) == [_show("b"), _show("c"), _show("b", AT + timedelta(seconds=1))]

    def test_a_person_without_an_entry_gets_none_from_a_show(self) -> None:
        cache = HistoryCache(seconds=60)
        user = uuid4()
        cache.shown(user, _show("a"))
        assert cache.get(user) is None
