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


class TestReadsOnAnEventLoop:
    """SQLite's hot reads run on the event loop: they must never wait for threads to give a connection back."""

    def test_a_read_on_the_loop_does_not_wait_for_a_pool_that_threads_hold(self, tmp_path: Path) -> None:
        import asyncio
        import threading

        db = Database.connect(f"sqlite:///{tmp_path / 't.db'}")
        pool = db.read_engine.pool
        held = [db.read_engine.connect() for _ in range(pool.size() + pool._max_overflow)]  # type: ignore[attr-defined]
        answers: list[int] = []

        async def read() -> None:
            with db.read_connection() as connection:
                answers.append(connection.execute(text("SELECT 42")).scalar_one())

        loop = threading.Thread(target=asyncio.run, args=(read(),), daemon=True)
        try:
            loop.start()
            loop.join(timeout=5)
            assert not loop.is_alive(), "the read on the loop waited for the pool"
            assert answers == [42]
        finally:
            for connection in held:
                connection.close()
            loop.join(timeout=40)
            db.dispose()

    def test_each_use_ends_its_transaction_so_the_next_read_sees_new_commits(self, tmp_path: Path) -> None:
        import asyncio

        db = Database.connect(f"sqlite:///{tmp_path / 't.db'}")
        with db.write() as session:
            session.execute(text("CREATE TABLE t (n INTEGER)"))

        async def reads() -> list[int]:
            seen = []
            for n in range(3):
                with db.read_connection() as outer:
                    with db.read_connection() as inner:  # nested: the same connection, one transaction
                        assert inner is outer
                        seen.append(inner.execute(text("SELECT count(*) FROM t")).scalar_one())
                    assert outer.in_transaction()
                assert not outer.in_transaction()
                with db.write() as session:  # another connection commits between the reads
                    session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            return seen

        try:
            assert asyncio.run(reads()) == [0, 1, 2]
        finally:
            db.dispose()
