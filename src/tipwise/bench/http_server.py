"""The app as `tipwise bench http` serves it: the real app plus a hello-world route, one uvicorn worker.

Usage: python -m tipwise.bench.http_server PORT USERS TOKENS_FILE [--without-decision]

With `--without-decision`, the app also serves `/bench/tips-without-decision`: the same request
and answer as `/v1/tips/next` (bearer token, body, response model), around an answer decided once
at startup, so it shows what everything but the decision costs.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations, and one of them
# names a dependency built inside `main`.
import sys
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import Body, Depends

from tipwise import auth, migrations
from tipwise.app import create_app
from tipwise.bootstrap import build
from tipwise.kernel.db import Database
from tipwise.kernel.logging import configure_logging
from tipwise.profile import ConsentsPut
from tipwise.recommender.contracts import NextTipOut, NextTipRequest
from tipwise.settings import Settings

BENCH_PASSWORD = "bench password"  # noqa: S105 - throwaway accounts in a temp database


def main(port: int, users: int, tokens_file: Path, *, without_decision: bool = False) -> None:
    settings = Settings()
    configure_logging(level=settings.log_level, fmt="json")
    db = Database.connect(settings.sqlalchemy_url)
    migrations.upgrade(db)
    db.dispose()
    container = build(settings)
    tokens = []
    accounts = []
    for n in range(users):
        account = container.auth.register(email=f"load{n}@bench.test", password=BENCH_PASSWORD)
        container.profile.record_consents(user_id=account.id, decisions=ConsentsPut.every_purpose(granted=True))
        session = container.auth.start_session(account.id, method="password", user_agent="tipwise bench")
        tokens.append(session.access_token)
        accounts.append(account.id)
    tokens_file.write_text("\n".join(tokens) + "\n")
    app = create_app(container)

    @app.post("/bench/hello", include_in_schema=False)
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/bench/hello-sync", include_in_schema=False)
    def hello_sync() -> dict[str, bool]:
        # The same, run in the thread pool like every sync endpoint of the app.
        return {"ok": True}

    if without_decision:
        decided = container.recommender.next_tip(user_id=accounts[0])
        if decided is None:
            raise RuntimeError("no tip was eligible; the benchmark makes every tip eligible")
        principal = auth.principal_dependency(container.auth)

        @app.post("/bench/tips-without-decision", include_in_schema=False, response_model=NextTipOut)
        async def tips_without_decision(
            user: Annotated[auth.Principal, Depends(principal)],
            body: Annotated[NextTipRequest | None, Body()] = None,
        ) -> NextTipOut:
            # `/v1/tips/next` minus `next_tip_async`: token check, body, response model.
            return decided

    # At the head of the route table, like `/v1/tips/next`: FastAPI tries routes in order, a few
    # microseconds each, and the baseline should not pay for matching every route of the app.
    hellos = [route for route in app.router.routes if getattr(route, "path", "").startswith("/bench/")]
    app.router.routes[:] = hellos + [route for route in app.router.routes if route not in hellos]
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), without_decision="--without-decision" in sys.argv[4:])
