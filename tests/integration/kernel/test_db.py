"""The SQLite database: where its write-ahead log is checkpointed."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from tipwise.kernel.db import Database

PAGE = 4096


class TestSqliteCheckpoints:
    def test_a_commit_leaves_the_checkpoint_to_the_background_thread_which_copies_the_log(self, tmp_path: Path) -> None:
        path = tmp_path / "t.db"
        db = Database.connect(f"sqlite:///{path}")
        try:
            with db.write() as session:
                session.execute(text("CREATE TABLE blobs (b BLOB)"))
            # 2,000 pages: twice SQLite's default automatic checkpoint, well under the backstop.
            with db.write() as session:
                for _ in range(20):
                    session.execute(text("INSERT INTO blobs VALUES (randomblob(:n))"), {"n": 100 * PAGE})
            # The commit returned without copying the log into the database file ...
            assert path.stat().st_size < 100 * PAGE
            assert Path(f"{path}-wal").stat().st_size > 2000 * PAGE
            # ... and the background thread copies it soon after.
            deadline = time.monotonic() + 10
            while path.stat().st_size < 2000 * PAGE and time.monotonic() < deadline:
                time.sleep(0.05)
            assert path.stat().st_size >= 2000 * PAGE
            with db.read() as session:
                assert session.scalar(text("SELECT count(*) FROM blobs")) == 20
        finally:
            db.dispose()
