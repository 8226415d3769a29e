"""Recommender repository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy.exc import IntegrityError

from tipwise.advice import Category
from tipwise.kernel.db import Database
from tipwise.kernel.ids import new_id
from tipwise.recommender import Reaction
from tipwise.recommender.models import FeedbackRow, TipInstanceRow
from tipwise.recommender.repository import add_feedback, add_instance, history_page, history_since, instance_of

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _instance(user: UUID, tip: str, at: datetime, reaction: Reaction | None = None) -> TipInstanceRow:
    return TipInstanceRow(
        id=new_id(),
        user_id=user,
        tip_id=tip,
        category=Category.MOVEMENT.value,
        decided_at=at,
        policy="linucb",
        policy_version="linucb@x",
        model_version=0,
        feature_spec="tipwise.tips/v3",
        context_snapshot={"shared": {"bias": 1.0}, "actions": {tip: {}}},
        propensity=0.5,
        probabilities={tip: 1.0},
        shadows=[],
        confidence=0.5,
        explored=True,
        seed=2**62 + 7,
        reaction=reaction.value if reaction else None,
        reacted_at=at + timedelta(minutes=1) if reaction else None,
    )


class TestRecommenderRepository:
    def test_instances_round_trip_with_json_and_aware_times(self, migrated: Database) -> None:
        user = new_id()
        row = _instance(user, "movement-a", T0)
        with migrated.write() as session:
            add_instance(session, row)
        with migrated.read() as session:
            loaded = instance_of(session, user_id=user, tip_instance_id=row.id)
            assert loaded is not None
            assert loaded.decided_at == T0
            assert loaded.decided_at.tzinfo is not None
            assert loaded.context_snapshot == {"shared": {"bias": 1.0}, "actions": {"movement-a": {}}}
            assert loaded.seed == 2**62 + 7
            assert instance_of(session, user_id=new_id(), tip_instance_id=row.id) is None

    def test_history_since_keeps_recent_shows_and_every_not_for_me(self, migrated: Database) -> None:
        user, other = new_id(), new_id()
        with migrated.write() as session:
            add_instance(session, _instance(user, "old", T0 - timedelta(days=200)))
            add_instance(session, _instance(user, "old-never", T0 - timedelta(days=200), Reaction.NOT_FOR_ME))
            add_instance(session, _instance(user, "recent", T0 - timedelta(hours=1), Reaction.DONE))
            add_instance(session, _instance(other, "recent", T0))
        with migrated.read() as session:
            shows = history_since(session, user_id=user, since=T0 - timedelta(days=90))
        assert sorted((s.tip_id, s.reaction) for s in shows) == [
            ("old-never", Reaction.NOT_FOR_ME),
            ("recent", Reaction.DONE),
        ]

    def test_history_pages_are_newest_first_and_stable_on_equal_times(self, migrated: Database) -> None:
        user = new_id()
        rows = [_instance(user, f"t{i}", T0 + timedelta(minutes=i // 2)) for i in range(5)]
        with migrated.write() as session:
            for row in rows:
                add_instance(session, row)
        expected = sorted(rows, key=lambda r: (r.decided_at, r.id), reverse=True)
        seen: list[UUID] = []
        before = None
        with migrated.read() as session:
            while True:
                page = history_page(session, user_id=user, limit=2, before=before)
                if not page:
                    break
                seen.extend(r.id for r in page)
                before = (page[-1].decided_at, page[-1].id)
        assert seen == [r.id for r in expected]

    def test_one_reaction_per_tip_and_one_use_per_idempotency_key(self, migrated: Database) -> None:
        user = new_id()
        first, second = _instance(user, "a", T0), _instance(user, "b", T0)
        with migrated.write() as session:
            add_instance(session, first)
            add_instance(session, second)
            add_feedback(session, _feedback(user, first.id, "key-1"))

        with pytest.raises(IntegrityError), migrated.write() as session:
            add_feedback(session, _feedback(user, first.id, "key-2"))
        with pytest.raises(IntegrityError), migrated.write() as session:
            add_feedback(session, _feedback(user, second.id, "key-1"))
        with migrated.write() as session:
            add_feedback(session, _feedback(new_id(), new_id(), "key-1"))  # keys are per person


def _feedback(user: UUID, instance: UUID, key: str) -> FeedbackRow:
    return FeedbackRow(
        id=new_id(), user_id=user, tip_instance_id=instance, reaction="done", idempotency_key=key, created_at=T0
    )
