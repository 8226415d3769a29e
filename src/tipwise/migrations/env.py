"""Alembic environment: runs migrations on the connection Tipwise hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import tipwise.advice.models
import tipwise.auth.models
import tipwise.events.models
import tipwise.ml.pipelines.models
import tipwise.profile.models
import tipwise.recommender.models  # noqa: F401 - registers every module's tables
from tipwise.kernel.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as own:
            _migrate(own)
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
