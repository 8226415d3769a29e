"""Unit tests of the fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tipwise.kernel.clock import FakeClock, SystemClock


class TestFakeClock:
    def test_default_start_is_a_fixed_aware_utc_moment(self) -> None:
        assert FakeClock().now() == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert FakeClock().now().tzinfo is not None

    def test_time_moves_only_when_advanced(self) -> None:
        start = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)
        clock = FakeClock(start)

        assert clock.now() == start
        assert clock.now() == start
        clock.advance(timedelta(hours=2, minutes=30))
        assert clock.now() == datetime(2026, 2, 1, 10, 30, tzinfo=UTC)

    def test_set_jumps_to_an_aware_moment(self) -> None:
        clock = FakeClock()
        moment = datetime(2026, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))

        clock.set(moment)

        assert clock.now() == moment

    def test_naive_start_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            FakeClock(datetime(2026, 1, 5, 9, 0))

    def test_naive_set_is_refused_and_keeps_the_time(self) -> None:
        clock = FakeClock()

        with pytest.raises(ValueError, match="timezone-aware"):
            clock.set(datetime(2026, 1, 5, 9, 0))

        assert clock.now() == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class TestSystemClock:
    def test_system_clock_returns_an_aware_utc_time(self) -> None:
        assert SystemClock().now().tzinfo is UTC
