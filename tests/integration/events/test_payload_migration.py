"""The migration to Protobuf payloads keeps a log written with JSON payloads readable and replayable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from tipwise import events, migrations
from tipwise.kernel.clock import FakeClock
from tipwise.kernel.db import Database, UTCDateTime
from tipwise.kernel.ids import new_id
from tipwise.recommender import FeedbackReaction, TipDecided
from tipwise.recommender.domain.reactions import Reaction

BEFORE = "2026_11_25_policy_promotions"
NOW = datetime(2026, 11, 25, 18, 0, 1, 250000, tzinfo=UTC)
USER = UUID("8597d90a-b99f-43c4-953f-af5e044e5619")
INSTANCE = UUID("e286c084-1a63-4049-a78e-112c6cb75da5")

DECIDED = TipDecided(
    tip_instance_id=INSTANCE,
    user_id=USER,
    tip_id="movement-walk",
    policy="linucb",
    model_version=3,
    feature_spec="f1",
    shared={"bias": 1.0, "hour_sin": 0.25},
    action={"effort_low": 1.0},
    propensity=0.1 + 0.2,
    decided_at=NOW,
)
REACTED = FeedbackReaction(tip_instance_id=INSTANCE, user_id=USER, reaction=Reaction.NOT_FOR_ME, reacted_at=NOW)
# What the JSON-era code wrote: the dicts of `to_data()`, keys sorted.
JSON_ERA = [
    (events.TIP_DECIDED, DECIDED.to_data()),
    (events.FEEDBACK_REACTION, REACTED.to_data()),
    (events.REWARD_DEFAULTED, {"tip_instance_id": str(INSTANCE)}),
]


def _columns() -> list[sa.ColumnClause[Any]]:
    """The columns the JSON-era code wrote (no trace_id yet)."""
    return [
        sa.column("event_id", sa.Uuid()),
        sa.column("type", sa.String()),
        sa.column("subject", sa.String()),
        sa.column("time", UTCDateTime()),
        sa.column("schema_version", sa.Integer()),
        sa.column("payload", sa.LargeBinary()),
    ]


LOG = sa.table("events_log", *_columns(), sa.column("appended_at", UTCDateTime()))
OUTBOX = sa.table("events_outbox", *_columns())


@pytest.fixture
def json_era(database_url: str) -> Iterator[Database]:
    """A database at the revision before Protobuf payloads, holding JSON payloads in the log and the outbox."""
    db = Database.connect(database_url)
    migrations.upgrade(db, BEFORE)
    with db.write_engine.begin() as connection:
        for type, data in JSON_ERA:
            connection.execute(sa.insert(LOG).values(**_row(type, data), appended_at=NOW))
        connection.execute(sa.insert(OUTBOX).values(**_row(events.TIP_DECIDED, DECIDED.to_data())))
    yield db
    db.dispose()


def _row(type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": new_id(),
        "type": type,
        "subject": str(USER),
        "time": NOW,
        "schema_version": 1,
        "payload": orjson.dumps(data, option=orjson.OPT_SORT_KEYS),
    }


def _payloads(db: Database, table: sa.TableClause) -> list[bytes]:
    with db.read_engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.select(table.c.payload))]


class TestPayloadMigration:
    def test_json_payloads_become_protobuf_and_read_back_as_the_same_dicts(
        self, json_era: Database, clock: FakeClock
    ) -> None:
        migrations.upgrade(json_era)
        bus = events.EmbeddedBus(db=json_era, clock=clock)
        bus.relay()
        log = list(bus.read())
        assert [(e.type, e.data()) for e in log] == [*JSON_ERA, (events.TIP_DECIDED, DECIDED.to_data())]
        assert all(e.trace_id == "" for e in log)
        assert TipDecided.from_message(log[0].message(events.messages.TipDecided)) == DECIDED
        assert FeedbackReaction.from_message(log[1].message(events.messages.FeedbackReaction)) == REACTED
        fresh = events.Event.create(type=events.TIP_DECIDED, subject=str(USER), time=NOW, message=DECIDED.to_message())
        assert log[0].payload == fresh.payload

    def test_a_downgrade_turns_the_payloads_back_into_the_same_json(self, json_era: Database) -> None:
        before = _payloads(json_era, LOG), _payloads(json_era, OUTBOX)
        migrations.upgrade(json_era)
        assert _payloads(json_era, LOG)[0] != before[0][0]
        config = migrations.alembic_config(json_era.url)
        with json_era.write_engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, BEFORE)
        assert (_payloads(json_era, LOG), _payloads(json_era, OUTBOX)) == before

    def test_a_payload_that_fits_no_message_stops_the_upgrade_naming_the_row(self, json_era: Database) -> None:
        with json_era.write_engine.begin() as connection:
            connection.execute(sa.insert(LOG).values(**_row(events.TIP_DECIDED, {"n": 1}), appended_at=NOW))
        with pytest.raises(RuntimeError, match=r"events_log row position=4 \(tip\.decided\).*has no field 'n'"):
            migrations.upgrade(json_era)
        assert migrations.pending(json_era)[0] == {BEFORE}
