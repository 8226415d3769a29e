"""Outages of the real servers, made by cutting a TCP proxy in front of them.

NATS down: the API keeps taking feedback (it waits in the outbox), /readyz says `degraded`, and
once NATS is back every event is delivered and learned exactly once.
PostgreSQL down: requests get a clear 503 problem, nothing is half-written, and the app recovers
without a restart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import ContainerFactory
from tests.e2e.helpers import sign_up
from tests.support.proxy import Proxy, proxy
from tipwise.app import create_app
from tipwise.bootstrap import Container
from tipwise.events.jetstream import NatsBus
from tipwise.events.models import OutboxRow
from tipwise.recommender.models import FeedbackRow


def _eventually(condition: Callable[[], bool], *, timeout: float = 30.0, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:g} s")


def _reactions_learned(container: Container) -> float:
    for line in container.metrics.render().decode().splitlines():
        if line.startswith('tipwise_rewards_total{source="reaction"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _decide_and_react(client: TestClient, headers: dict[str, str], key: str) -> Any:
    decision = client.post("/v1/tips/next", headers=headers)
    assert decision.status_code == 200, decision.text
    return client.post(
        "/v1/feedback",
        headers=headers,
        json={"tip_instance_id": decision.json()["tip_instance_id"], "reaction": "done", "idempotency_key": key},
    )


@pytest.fixture
def nats_proxy(nats_url: str) -> Iterator[Proxy]:
    url = make_url(nats_url.replace("nats://", "postgresql://"))  # any URL scheme parses host and port
    with proxy(url.host or "127.0.0.1", url.port or 4222) as running:
        yield running


@pytest.mark.nats
class TestNatsOutage:
    def test_feedback_waits_in_the_outbox_and_is_learned_once_when_nats_returns(
        self, make_container: ContainerFactory, database_url: str, nats_proxy: Proxy
    ) -> None:
        container = make_container(
            database_url,
            settings={
                "event_bus": f"nats://127.0.0.1:{nats_proxy.port}",
                "nats_prefix": f"out{uuid.uuid4().hex[:8]}",
                "embedded_worker": True,
            },
        )
        bus = container.bus
        assert isinstance(bus, NatsBus)
        try:
            with TestClient(create_app(container)) as client:
                headers = sign_up(client, "outage@example.com")
                assert _decide_and_react(client, headers, "before").status_code == 200
                _eventually(lambda: _reactions_learned(container) == 1, what="the first reaction was not learned")

                nats_proxy.cut()
                assert _decide_and_react(client, headers, "during-1").status_code == 200
                assert _decide_and_react(client, headers, "during-2").status_code == 200
                ready = client.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["status"] == "degraded"
                assert ready.json()["event_bus"] == "unreachable"
                assert ready.json()["outbox_backlog"] >= 2  # the two reactions, at least
                assert _reactions_learned(container) == 1
                status = container.bus_status()
                assert status["connected"] is False
                assert status["dead_letters"] is None  # unknown while NATS is unreachable

                nats_proxy.restore()
                _eventually(lambda: _reactions_learned(container) == 3, what="the waiting reactions were not learned")
                _eventually(lambda: client.get("/readyz").json()["status"] == "ok", what="readyz did not recover")
                assert client.get("/readyz").json()["outbox_backlog"] == 0
                time.sleep(1.0)  # a duplicate would arrive now, if there were one
                assert _reactions_learned(container) == 3
                assert container.bus_status() | {"kind": "", "dead_letter_subject": ""} == {
                    "kind": "",
                    "connected": True,
                    "outbox_backlog": 0,
                    "dead_letters": 0,
                    "dead_letter_subject": "",
                }
        finally:
            bus.delete_streams()


@pytest.mark.postgres
class TestPostgresOutage:
    def test_requests_get_503_nothing_is_half_written_and_the_app_recovers(
        self, make_container: ContainerFactory, postgres_admin_url: str
    ) -> None:
        from tests.support.postgres import fresh_database

        with fresh_database(postgres_admin_url) as direct_url:
            url = make_url(direct_url)
            with proxy(url.host or "127.0.0.1", url.port or 5432) as db_proxy:
                proxied = url.set(host="127.0.0.1", port=db_proxy.port).render_as_string(hide_password=False)
                container = make_container(proxied)
                with TestClient(create_app(container)) as client:
                    headers = sign_up(client, "pg-outage@example.com")
                    decision = client.post("/v1/tips/next", headers=headers).json()
                    before = _counts(container)

                    db_proxy.cut()
                    body = {
                        "tip_instance_id": decision["tip_instance_id"],
                        "reaction": "done",
                        "idempotency_key": "pg-1",
                    }
                    refused = client.post("/v1/feedback", headers=headers, json=body)
                    assert refused.status_code == 503
                    assert refused.headers["content-type"].startswith("application/problem+json")
                    assert refused.json()["code"] == "database_unavailable"
                    assert refused.headers["retry-after"] == "5"
                    assert client.get("/readyz").status_code == 503

                    db_proxy.restore()
                    _eventually(lambda: client.get("/readyz").status_code == 200, what="readyz did not recover")
                    assert _counts(container) == before  # the refused request wrote nothing
                    accepted = client.post("/v1/feedback", headers=headers, json=body)
                    assert accepted.status_code == 200, accepted.text
                    after = _counts(container)
                    assert after == {"feedback": before["feedback"] + 1, "outbox": before["outbox"] + 1}


def _counts(container: Container) -> dict[str, int]:
    with container.db.read() as session:
        return {
            "feedback": session.scalar(select(func.count()).select_from(FeedbackRow)) or 0,
            "outbox": session.scalar(select(func.count()).select_from(OutboxRow)) or 0,
        }
