"""What every `tipwise` command shares: failing with a clear message, and a container that is closed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

from tipwise.kernel.errors import ConfigurationError

if TYPE_CHECKING:
    from tipwise.bootstrap import Container
    from tipwise.settings import Settings


def fail(message: str) -> NoReturn:
    """Print `error: message` to standard error and exit with status 1."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def command_container(settings: Settings) -> Iterator[Container]:
    """Build the container for a command (failing clearly on bad configuration) and close it afterwards."""
    from tipwise.bootstrap import build

    try:
        container = build(settings)
    except ConfigurationError as exc:
        fail(exc.detail)
    try:
        yield container
    finally:
        container.close()
