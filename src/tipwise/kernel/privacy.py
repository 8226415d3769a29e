"""The personal-data port: how a module exports and erases what it holds about a person.

Every module with a table that holds a user id implements `PersonalData` in its own package and
exposes it through its public package; the composition root collects them (`tipwise.privacy`).
A test walks every table and fails when one holding a user id is not in some port's `tables`.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.orm import Session


class PersonalData(Protocol):
    """One module's share of export and erasure."""

    @property
    def name(self) -> str:
        """The module's name; the export's file is `<name>.json`."""
        ...

    @property
    def tables(self) -> frozenset[str]:
        """Every table of the module that holds a user id."""
        ...

    def export(self, session: Session, user_id: UUID) -> dict[str, list[dict[str, Any]]]:
        """Return everything the module holds about the person, JSON-able, by section."""
        ...

    def erase(self, session: Session, user_id: UUID) -> int:
        """Delete everything the module holds about the person in the caller's transaction; return rows gone."""
        ...


def jsonable(value: Any) -> Any:
    """Return `value` as plain JSON types (UUIDs, datetimes and bytes become strings)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """Return an ORM row's columns as a JSON-able dict."""
    return {column.key: jsonable(getattr(row, column.key)) for column in row.__table__.columns}
