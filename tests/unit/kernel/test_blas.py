"""The threads numpy's BLAS may use: one by default in every `tipwise` command, `TIPWISE_BLAS_THREADS` to change it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from tipwise.cli import app
from tipwise.kernel.blas import blas_threads, limit_blas_threads
from tipwise.settings import Settings


@pytest.fixture
def several_threads() -> Iterator[list[int]]:
    """BLAS allowed every core for the test; the process's own limit comes back after it."""
    before = blas_threads()
    limit_blas_threads(os.cpu_count() or 1)
    if blas_threads() == [1]:
        pytest.skip("this machine's BLAS runs one thread whatever the limit (one core)")
    try:
        yield blas_threads()
    finally:
        threadpool_limits(limits=before[0] if before else None, user_api="blas")


def test_the_default_is_one_thread() -> None:
    assert Settings().blas_threads == 1


def test_limiting_sets_every_loaded_blas_library(several_threads: list[int]) -> None:
    limit_blas_threads(1)
    assert blas_threads() == [1] * len(several_threads)


def test_fewer_than_one_thread_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        limit_blas_threads(0)


def test_every_command_applies_the_setting(
    several_threads: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIPWISE_BLAS_THREADS", "1")
    result = CliRunner().invoke(app, ["openapi", "--output", str(tmp_path / "openapi.json")])
    assert result.exit_code == 0, result.output
    assert blas_threads() == [1] * len(several_threads)
