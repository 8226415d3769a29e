"""Unit tests of time-ordered identifiers (UUIDv7)."""

from __future__ import annotations

import time
import uuid

from tipwise.kernel.ids import new_id


def timestamp_ms(value: uuid.UUID) -> int:
    """Return the 48-bit Unix-milliseconds prefix of a UUIDv7."""
    return value.int >> 80


class TestNewId:
    def test_id_is_a_version_7_uuid_with_the_rfc_variant(self) -> None:
        for _ in range(200):
            value = new_id()

            assert value.version == 7
            assert value.variant == uuid.RFC_4122

    def test_timestamp_prefix_is_the_creation_time_in_milliseconds(self) -> None:
        before = time.time_ns() // 1_000_000
        value = new_id()
        after = time.time_ns() // 1_000_000

        assert before <= timestamp_ms(value) <= after

    def test_ids_generated_in_sequence_have_non_decreasing_timestamps(self) -> None:
        ids = [new_id() for _ in range(2000)]

        stamps = [timestamp_ms(value) for value in ids]
        assert stamps == sorted(stamps)

    def test_ids_generated_in_sequence_are_unique(self) -> None:
        ids = [new_id() for _ in range(2000)]

        assert len(set(ids)) == len(ids)

    def test_ids_from_different_milliseconds_sort_by_time(self) -> None:
        ids = [new_id() for _ in range(2000)]
        first_of_each_ms: dict[int, uuid.UUID] = {}
        for value in ids:
            first_of_each_ms.setdefault(timestamp_ms(value), value)

        ordered = [first_of_each_ms[ms] for ms in sorted(first_of_each_ms)]
        assert sorted(ordered) == ordered
