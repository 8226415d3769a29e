"""The threads numpy's BLAS may use while a block runs (the learner's batches)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from threadpoolctl import ThreadpoolController

from tipwise.kernel.blas import BlasThreads, blas_threads


@pytest.fixture
def several_threads() -> Iterator[list[int]]:
    """BLAS allowed every core for the test; the process's own setting comes back after it."""
    controller = ThreadpoolController()
    with controller.limit(limits=os.cpu_count() or 1, user_api="blas"):
        if blas_threads() == [1]:
            pytest.skip("this machine's BLAS runs one thread whatever the limit (one core)")
        yield blas_threads()


def test_the_limit_holds_inside_the_block_and_the_threads_come_back_after(several_threads: list[int]) -> None:
    limit = BlasThreads(1)
    with limit.limited():
        assert blas_threads() == [1] * len(several_threads)
        with limit.limited():  # nested: the same
            assert blas_threads() == [1] * len(several_threads)
    assert blas_threads() == several_threads


def test_the_threads_come_back_when_the_block_fails(several_threads: list[int]) -> None:
    with pytest.raises(RuntimeError, match="inside"), BlasThreads(1).limited():
        raise RuntimeError("inside")
    assert blas_threads() == several_threads


def test_fewer_than_one_thread_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        BlasThreads(0)
