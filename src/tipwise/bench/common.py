"""Shared pieces of the benchmarks: timing summaries, result files, tables."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


@dataclass(frozen=True, kw_only=True)
class Result:
    """One measured figure. Latencies are in milliseconds; rates in units per second."""

    name: str
    mean: float
    std: float
    seconds: float
    unit: str
    p50: float | None = None
    p99: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def latency_result(name: str, samples_ns: Sequence[int] | np.ndarray, *, seconds: float, **extra: Any) -> Result:
    millis = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return Result(
        name=name,
        mean=float(millis.mean()),
        std=float(millis.std()),
        seconds=seconds,
        unit="ms",
        p50=float(np.percentile(millis, 50)),
        p99=float(np.percentile(millis, 99)),
        extra=extra,
    )


def time_calls(call: Callable[[], object], *, iterations: int, warmup: int = 50) -> tuple[np.ndarray, float]:
    """Time `call` `iterations` times; return the samples (ns) and the wall time of the loop."""
    for _ in range(warmup):
        call()
    samples = np.empty(iterations, dtype=np.int64)
    started = time.perf_counter()
    clock = time.perf_counter_ns
    for i in range(iterations):
        begin = clock()
        call()
        samples[i] = clock() - begin
    return samples, time.perf_counter() - started


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def print_table(title: str, results: Sequence[Result]) -> None:
    table = Table(title=title)
    for column in ("name", "p50", "p99", "mean", "std", "unit"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for r in results:
        table.add_row(
            r.name,
            _fmt(r.p50),
            _fmt(r.p99),
            _fmt(r.mean),
            _fmt(r.std),
            r.unit,
        )
    console.print(table)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.0f}"


def write_json(path: Path, benchmark: str, results: Sequence[Result], **meta: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": benchmark,
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cpus": _cpus()},
        **meta,
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    console.print(f"wrote {path}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
