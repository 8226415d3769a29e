"""Which tables hold a user id: the walk the export/erasure coverage test and the erasure test share."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any
from uuid import UUID

from sqlalchemy import Column, MetaData, Table, select

import tipwise
from tipwise.kernel.db import Base, Database

ACCOUNTS = "auth_user"
# Column names that hold a user id wherever they appear.
USER_ID_NAMES = frozenset({"user_id", "account_id"})


def import_every_model() -> MetaData:
    """Import every `models` module under tipwise so `Base.metadata` knows every table; return it."""
    for info in pkgutil.walk_packages(tipwise.__path__, prefix="tipwise."):
        if info.name.endswith(".models"):
            importlib.import_module(info.name)
    return Base.metadata


def user_id_columns(table: Table) -> list[Column[object]]:
    """Return the columns of `table` that hold a user id.

    The accounts table's id; a foreign key to it; a column named like `user_id`; and the
    `subject` of the events module's tables (an event is about its subject).
    """
    found: list[Column[object]] = []
    for column in table.columns:
        if table.name == ACCOUNTS and column.name == "id":
            found.append(column)
        elif any(fk.column.table.name == ACCOUNTS for fk in column.foreign_keys):
            found.append(column)
        elif column.name in USER_ID_NAMES:
            found.append(column)
        elif table.name.startswith("events_") and column.name == "subject":
            found.append(column)
    return found


def tables_holding_user_ids(metadata: MetaData) -> dict[str, list[Column[object]]]:
    return {name: cols for name, table in metadata.tables.items() if (cols := user_id_columns(table))}


def rows_about(db: Database, user: UUID) -> dict[str, list[Any]]:
    """Every row in any table whose user-id columns hold `user`, per table."""
    found: dict[str, list[Any]] = {}
    with db.read() as session:
        for name, columns in tables_holding_user_ids(import_every_model()).items():
            table = columns[0].table
            for column in columns:
                value: object = str(user) if column.type.python_type is str else user
                rows = session.execute(select(table).where(column == value)).all()
                if rows:
                    found.setdefault(name, []).extend(rows)
    return found
