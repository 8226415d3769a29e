"""The app as `tipwise bench http` serves it: the real app plus a hello-world route, one uvicorn worker.

Usage: python -m tipwise.bench.http_server PORT USERS TOKENS_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from tipwise import migrations
from tipwise.app import create_app
from tipwise.bootstrap import build
from tipwise.kernel.db import Database
from tipwise.kernel.logging import configure_logging
from tipwise.profile import ConsentsPut
from tipwise.settings import Settings

BENCH_PASSWORD = "bench password"  # noqa: S105 - throwaway accounts in a temp database


def main(port: int, users: int, tokens_file: Path) -> None:
    settings = Settings()
    configure_logging(level=settings.log_level, fmt="json")
    db = Database.connect(settings.sqlalchemy_url)
    migrations.upgrade(db)
    db.dispose()
    container = build(settings)
    tokens = []
    for n in range(users):
        account = container.auth.register(email=f"load{n}@bench.test", password=BENCH_PASSWORD)
        container.profile.record_consents(user_id=account.id, decisions=ConsentsPut.every_purpose(granted=True))
        session = container.auth.start_session(account.id, method="password", user_agent="tipwise bench")
        tokens.append(session.access_token)
    tokens_file.write_text("\n".join(tokens) + "\n")
    app = create_app(container)

    @app.post("/bench/hello", include_in_schema=False)
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/bench/hello-sync", include_in_schema=False)
    def hello_sync() -> dict[str, bool]:
        # The same, run in the thread pool like every sync endpoint of the app.
        return {"ok": True}

    # At the head of the route table, like `/v1/tips/next`: FastAPI tries routes in order, a few
    # microseconds each, and the baseline should not pay for matching every route of the app.
    hellos = [route for route in app.router.routes if getattr(route, "path", "").startswith("/bench/")]
    app.router.routes[:] = hellos + [route for route in app.router.routes if route not in hellos]
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
