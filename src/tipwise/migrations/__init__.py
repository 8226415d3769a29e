"""Alembic migrations: one linear history for every module's tables."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tipwise.kernel.db import Database

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    config = alembic_config(db.url)
    with db.write_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def pending(db: Database) -> tuple[set[str], set[str]]:
    """Return (current revisions, head revisions) of the database."""
    heads = set(ScriptDirectory.from_config(alembic_config(db.url)).get_heads())
    with db.read_engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, heads


def is_current(db: Database) -> bool:
    current, heads = pending(db)
    return current == heads
