"""SQLite statements run through the driver, for the batch paths that read or write thousands of rows.

SQLAlchemy's per-row machinery (result rows, type processing, an `IN` list compiled
with a unique bound name per element) costs more than SQLite itself on a batch of a
consumer or the learner. These helpers keep the SQL written with Core (the text is
what SQLAlchemy compiles for SQLite) and the values converted by the columns' own
type processors (the same stored form and the same Python values), and leave only
the execution to the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import orjson
from sqlalchemy import ScalarSelect, bindparam, column, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeEngine

_DIALECT = sqlite.dialect()


def json_values(parameter: str) -> ScalarSelect[Any]:
    """The values of a JSON array parameter, as a subquery (`json_each`): one parameter for a list of any length.

    An `IN` list is a new statement text for every length, which SQLAlchemy compiles again and
    SQLite plans again; `column IN (json_values("ids"))` is one text for every batch.
    """
    return select(column("value")).select_from(func.json_each(bindparam(parameter))).scalar_subquery()


def json_array(values: Iterable[Any]) -> str:
    """The text of a JSON array parameter for `json_values`."""
    return orjson.dumps(list(values)).decode()


class DriverStatement:
    """A Core statement compiled once for SQLite: its text, and its named values put in the driver's order."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] for name in self._names)


def to_driver(type_: TypeEngine[Any]) -> Callable[[Any], Any]:
    """Return the function that turns a value into what SQLite's driver receives for a column of `type_`.

    `_cached_bind_processor` is the one SQLAlchemy itself applies: for a `TypeDecorator` it runs
    `process_bind_param` and then the dialect's own conversion (a datetime to SQLite's stored
    text), where the public `bind_processor` stops after the first.
    """
    processor = type_._cached_bind_processor(_DIALECT)
    return processor if processor is not None else _same


def from_driver(type_: TypeEngine[Any]) -> Callable[[Any], Any]:
    """Return the function that turns what SQLite's driver returns for a column of `type_` into its value."""
    processor = type_._cached_result_processor(_DIALECT, None)
    return processor if processor is not None else _same


def _same(value: Any) -> Any:
    return value
