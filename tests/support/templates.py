"""A migrated SQLite template: each test gets a copy instead of running every migration again.

Running the Alembic chain costs ~0.1 s on SQLite, and most of the thousand tests
build a container on SQLite. The template is migrated once per session with the
real migrations, and a test's new SQLite file is a copy of it: byte for byte the
schema the migrations produce. PostgreSQL databases are migrated per test: there
`CREATE DATABASE ... TEMPLATE` measured slower (0.4-0.7 s) than the migrations.
A database that already exists is migrated as before, so tests that start from an
older revision still migrate it themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

from tipwise import migrations
from tipwise.kernel.db import Database


class MigratedTemplates:
    """Brings test databases to the newest schema, copying one migrated SQLite file when it can."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._sqlite: Path | None = None

    def prepare(self, url: str) -> None:
        """Bring the database at `url` to the newest schema."""
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            target = Path(parsed.database)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self._sqlite_template(), target)
                return
        db = Database.connect(url)
        try:
            migrations.upgrade(db)
        finally:
            db.dispose()

    def _sqlite_template(self) -> Path:
        if self._sqlite is None:
            path = self._directory / "template.sqlite3"
            db = Database.connect(f"sqlite:///{path.as_posix()}")
            try:
                migrations.upgrade(db)
            finally:
                db.dispose()  # the last connection closing checkpoints the WAL into the file
            self._sqlite = path
        return self._sqlite
