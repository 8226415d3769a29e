"""Unit tests of the UTC datetime column type (no database involved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Dialect

from tipwise.kernel.db import UTCDateTime

NO_DIALECT = cast(Dialect, None)


class TestUTCDateTime:
    def test_none_is_bound_as_none(self) -> None:
        assert UTCDateTime().process_bind_param(None, NO_DIALECT) is None

    def test_naive_datetime_is_refused_when_bound(self) -> None:
        with pytest.raises(ValueError, match="naive datetimes are not stored"):
            UTCDateTime().process_bind_param(datetime(2026, 1, 5, 9, 0), NO_DIALECT)

    def test_aware_datetime_is_bound_as_the_same_instant_in_utc(self) -> None:
        paris = datetime(2026, 7, 1, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))

        bound = UTCDateTime().process_bind_param(paris, NO_DIALECT)

        assert bound == datetime(2026, 7, 1, 12, 30, tzinfo=UTC)
        assert bound is not None
        assert bound.tzinfo is UTC

    def test_none_is_read_as_none(self) -> None:
        assert UTCDateTime().process_result_value(None, NO_DIALECT) is None

    def test_naive_value_from_the_database_is_read_as_utc(self) -> None:
        read = UTCDateTime().process_result_value(datetime(2026, 1, 5, 9, 0), NO_DIALECT)

        assert read == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert read is not None
        assert read.tzinfo is UTC

    def test_aware_value_from_the_database_is_converted_to_utc(self) -> None:
        offset = datetime(2026, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=2)))

        read = UTCDateTime().process_result_value(offset, NO_DIALECT)

        assert read == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        assert read is not None
        assert read.tzinfo is UTC
