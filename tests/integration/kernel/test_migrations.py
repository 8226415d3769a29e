"""Migrations on SQLite and PostgreSQL: the schema they build is the schema the code expects."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from tests.conftest import FAST_AUTH
from tipwise import migrations
from tipwise.advice import AdviceLibraryError
from tipwise.bootstrap import build
from tipwise.kernel.db import Base, Database
from tipwise.kernel.errors import ConfigurationError
from tipwise.settings import Settings


class TestMigrations:
    def test_upgrade_creates_every_table_of_every_module(self, migrated: Database) -> None:
        tables = set(inspect(migrated.read_engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables

    def test_migrated_schema_matches_the_models_exactly(self, migrated: Database) -> None:
        with migrated.read_engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []

    def test_upgrade_twice_is_a_no_op_and_reports_current(self, migrated: Database) -> None:
        migrations.upgrade(migrated)
        current, heads = migrations.pending(migrated)
        assert current == heads
        assert migrations.is_current(migrated)

    def test_app_refuses_to_start_on_a_schema_that_is_behind(self, database_url: str) -> None:
        db = Database.connect(database_url)
        try:
            assert not migrations.is_current(db)
        finally:
            db.dispose()
        settings = Settings(database_url=database_url, secret_key="k" * 32)
        with pytest.raises(ConfigurationError, match="run `tipwise migrate`"):
            build(settings, auth_settings=FAST_AUTH)


class TestSqliteSettings:
    def test_sqlite_runs_in_wal_mode_with_foreign_keys(self, sqlite_url: str) -> None:
        db = Database.connect(sqlite_url)
        try:
            with db.read_engine.connect() as connection:
                assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
                assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        finally:
            db.dispose()


class TestStartup:
    def test_a_malformed_advice_library_stops_start_up_naming_the_bad_entry(
        self, migrated: Database, tmp_path: Path
    ) -> None:
        library = tmp_path / "library.toml"
        library.write_text(
            'schema_version = 1\nlibrary_version = "t"\n\n[[tip]]\nid = "movement-ok"\ntitle = "Walk"\n'
            'body = "Walk around the block once."\ncategory = "movement"\neffort = "low"\nminutes = 5\n'
            'times_of_day = ["morning"]\n\n[[tip]]\nid = "focus-bad"\ntitle = "Focus"\n'
            'body = "Close every tab you do not need."\ncategory = "focus"\neffort = "low"\nminutes = 0\n'
            'times_of_day = ["morning"]\n'
        )
        settings = Settings(database_url=migrated.url, secret_key="k" * 32, advice_library=library)
        with pytest.raises(AdviceLibraryError, match=r"tip #2 \(id 'focus-bad'\): minutes: Input should be greater"):
            build(settings, auth_settings=FAST_AUTH)
