"""The `tipwise bench` command group; each benchmark module registers its own command."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Measure learning quality, latency and throughput.", no_args_is_help=True)


def _register() -> None:
    from importlib import import_module

    for name in ("learn", "decide", "http", "events"):
        try:
            module = import_module(f"tipwise.bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tipwise.bench.{name}":
                raise
            continue
        module.register(bench_app)


_register()
