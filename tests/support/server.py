"""The real app served by uvicorn on a free port, for tests that drive it from outside (a browser)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.support.network import free_port
from tipwise import migrations
from tipwise.app import create_app
from tipwise.bootstrap import build
from tipwise.kernel.db import Database
from tipwise.settings import Settings


@contextmanager
def served_app(data_dir: Path, **build_options: Any) -> Iterator[str]:
    """Migrate a SQLite database in `data_dir`, serve the app (embedded worker included), yield its base URL."""
    settings = Settings(data_dir=data_dir, secret_key="browser-test-secret-key-long-enough-for-hs256")
    db = Database.connect(settings.sqlalchemy_url)
    migrations.upgrade(db)
    db.dispose()
    container = build(settings, **build_options)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        container.close()
