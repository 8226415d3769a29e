"""The paced worker's wait after a round: rounds take `duty` of the time, within the floor and the ceiling."""

from __future__ import annotations

import pytest

from tipwise.events.worker import paced_pause


@pytest.mark.parametrize(
    ("took", "expected"),
    [
        (0.02, 0.06),  # a round of 20 ms at a duty of 1/4 waits three times as long
        (0.05, 0.15),
        (0.001, 0.05),  # a short round still waits the coalescing floor
        (0.0, 0.05),
        (1.0, 0.25),  # a long round waits no longer than the ceiling
    ],
)
def test_the_pause_keeps_rounds_to_their_duty_within_floor_and_ceiling(took: float, expected: float) -> None:
    assert paced_pause(took, duty=0.25, floor=0.05, ceiling=0.25) == pytest.approx(expected)


def test_a_full_duty_never_pauses_beyond_the_floor() -> None:
    assert paced_pause(10.0, duty=1.0, floor=0.05, ceiling=0.25) == 0.05
