"""Unit tests of the decision features built from the local time, the history and the candidates."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tipwise.advice import Category, Effort, TimeOfDay, Tip, load_library
from tipwise.profile import Purpose
from tipwise.recommender.domain.candidates import PastShow
from tipwise.recommender.domain.features import (
    CALENDAR_FEATURES,
    FEATURE_PURPOSES,
    FEATURE_SPEC,
    CategoryStats,
    Context,
    FeatureAssembler,
    UndeclaredFeature,
    bind,
    calendar_features,
    category_stats,
)
from tipwise.recommender.domain.reactions import Reaction

PARIS = ZoneInfo("Europe/Paris")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
# A Wednesday, 09:00 UTC: 10:00 in Paris, 01:00 in Los Angeles.
NOW = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
SATURDAY_MORNING = datetime(2026, 3, 7, 10, 0, tzinfo=PARIS)


def make_tip(
    tip_id: str,
    category: Category = Category.MOVEMENT,
    *,
    effort: Effort = Effort.LOW,
    minutes: int = 5,
    times: frozenset[TimeOfDay] = frozenset({TimeOfDay.MORNING}),
) -> Tip:
    return Tip(
        id=tip_id,
        title=f"Tip {tip_id}",
        body="A body long enough to be a real tip in the library.",
        category=category,
        effort=effort,
        minutes=minutes,
        times_of_day=times,
    )


def show(category: Category, reaction: Reaction | None = None, *, hours_ago: int = 30) -> PastShow:
    decided = NOW - timedelta(hours=hours_ago)
    return PastShow(
        tip_id=f"{category}-{hours_ago}",
        category=category,
        decided_at=decided,
        reaction=reaction,
        reacted_at=decided + timedelta(minutes=5) if reaction else None,
    )


def assemble(local_now: datetime, history: list[PastShow] | None = None, tips: list[Tip] | None = None) -> Context:
    return FeatureAssembler().assemble(
        local_now=local_now,
        history=history or [],
        tips=tips if tips is not None else [make_tip("t")],
        purposes=frozenset(Purpose),
    )


def shown_feature(count: int) -> float:
    return round(math.log1p(count) / 5.0, 6)


class TestSharedFeatures:
    def test_same_instant_is_a_work_morning_in_paris(self) -> None:
        context = assemble(NOW.astimezone(PARIS))

        assert context.shared == {"bias": 1.0, "tod=morning": 1.0, "work_hours": 1.0}

    def test_same_instant_is_night_in_los_angeles(self) -> None:
        context = assemble(NOW.astimezone(LOS_ANGELES))

        assert context.shared == {"bias": 1.0, "tod=night": 1.0}

    def test_saturday_sets_weekend_and_never_work_hours(self) -> None:
        context = assemble(SATURDAY_MORNING)

        assert context.shared == {"bias": 1.0, "tod=morning": 1.0, "weekend": 1.0}

    @pytest.mark.parametrize(
        ("hour", "work_hours"),
        [(8, False), (9, True), (16, True), (17, False)],
    )
    def test_work_hours_flag_follows_the_nine_to_five_boundaries(self, hour: int, work_hours: bool) -> None:
        context = assemble(datetime(2026, 3, 4, hour, 0, tzinfo=PARIS))

        assert ("work_hours" in context.shared) is work_hours


class TestActionFeatures:
    def test_tip_features_describe_category_effort_and_minutes(self) -> None:
        tip = make_tip("walk", Category.MOVEMENT, effort=Effort.MEDIUM, minutes=10)

        features = assemble(NOW.astimezone(PARIS), tips=[tip]).actions["walk"]

        assert features == {
            "category=movement": 1.0,
            "effort=medium": 1.0,
            "minutes": round(math.log1p(10) / math.log1p(120), 6),
            "user_category_shown": 0.0,
            "fits_time_of_day": 1.0,
        }

    def test_minutes_are_capped_at_two_hours(self) -> None:
        tips = [make_tip("two-hours", minutes=120), make_tip("four-hours", minutes=240)]

        actions = assemble(NOW.astimezone(PARIS), tips=tips).actions

        assert actions["two-hours"]["minutes"] == 1.0
        assert actions["four-hours"]["minutes"] == 1.0

    def test_fits_time_of_day_is_set_only_for_tips_meant_for_the_local_part_of_the_day(self) -> None:
        tips = [
            make_tip("morning", times=frozenset({TimeOfDay.MORNING})),
            make_tip("evening", times=frozenset({TimeOfDay.EVENING})),
        ]

        paris = assemble(NOW.astimezone(PARIS), tips=tips).actions
        los_angeles = assemble(NOW.astimezone(LOS_ANGELES), tips=tips).actions

        assert paris["morning"]["fits_time_of_day"] == 1.0
        assert "fits_time_of_day" not in paris["evening"]
        assert "fits_time_of_day" not in los_angeles["morning"]
        assert "fits_time_of_day" not in los_angeles["evening"]

    def test_reaction_rates_are_per_category_with_one_extra_show_in_the_denominator(self) -> None:
        history = [
            show(Category.MOVEMENT, Reaction.DONE, hours_ago=30),
            show(Category.MOVEMENT, Reaction.DONE, hours_ago=40),
            show(Category.MOVEMENT, Reaction.SNOOZE, hours_ago=50),
            show(Category.MOVEMENT, None, hours_ago=60),
            show(Category.SLEEP, Reaction.NOT_FOR_ME, hours_ago=30),
        ]
        tips = [
            make_tip("move", Category.MOVEMENT),
            make_tip("sleep", Category.SLEEP),
            make_tip("cash", Category.FINANCE),
        ]

        actions = assemble(NOW.astimezone(PARIS), history=history, tips=tips).actions

        move = actions["move"]
        assert move["user_category_shown"] == shown_feature(4)
        assert move["user_category_done"] == pytest.approx(2 / 5)
        assert move["user_category_snooze"] == pytest.approx(1 / 5)
        assert "user_category_dismiss" not in move
        assert "user_category_not_for_me" not in move
        sleep = actions["sleep"]
        assert sleep["user_category_shown"] == shown_feature(1)
        assert sleep["user_category_not_for_me"] == pytest.approx(1 / 2)
        assert "user_category_done" not in sleep
        cash = actions["cash"]
        assert cash["user_category_shown"] == 0.0
        assert not any(name.startswith("user_category_") and name != "user_category_shown" for name in cash)

    def test_one_feature_map_per_candidate_keyed_by_tip_id(self) -> None:
        tips = [make_tip("b"), make_tip("a"), make_tip("c", Category.SLEEP)]

        context = assemble(NOW.astimezone(PARIS), tips=tips)

        assert list(context.actions) == ["b", "a", "c"]


class TestFeatureSpecParity:
    @pytest.mark.parametrize(
        "local_now",
        [
            NOW.astimezone(PARIS),
            NOW.astimezone(LOS_ANGELES),
            SATURDAY_MORNING,
            datetime(2026, 3, 4, 14, 0, tzinfo=PARIS),
            datetime(2026, 3, 4, 19, 0, tzinfo=PARIS),
        ],
    )
    def test_every_produced_feature_is_known_to_the_feature_spec(self, local_now: datetime) -> None:
        tips = list(load_library().tips)
        history = [
            show(category, reaction, hours_ago=hours)
            for hours, (category, reaction) in enumerate(
                ((c, r) for c in Category for r in (*Reaction, None)), start=13
            )
        ]

        context = assemble(local_now, history=history, tips=tips)
        matrix = FEATURE_SPEC.matrix(context.shared, [context.actions[tip.id] for tip in tips])

        assert matrix.shape == (len(tips), FEATURE_SPEC.dim)
        assert np.all(np.isfinite(matrix))

    def test_snapshot_records_the_feature_spec_name_and_the_features(self) -> None:
        context = assemble(NOW.astimezone(PARIS), tips=[make_tip("walk")])

        snapshot = context.snapshot()

        assert snapshot["feature_spec"] == "tipwise.tips/v3"
        assert snapshot["feature_spec"] == FEATURE_SPEC.name
        assert snapshot["shared"] == context.shared
        assert snapshot["actions"] == context.actions

    def test_no_two_declared_features_share_a_hashed_position(self) -> None:
        # On failure (a new declared name took a used bucket): pick `collision_free_seed(FEATURE_SPEC)`
        # and a new spec name, or rename the feature.
        assert FEATURE_SPEC.shared_bits is not None
        assert FEATURE_SPEC.action_bits is not None
        assert FEATURE_SPEC.collisions() == []


def personal_history() -> list[PastShow]:
    return [
        show(category, reaction, hours_ago=hours)
        for hours, (category, reaction) in enumerate(((c, r) for c in Category for r in (*Reaction, None)), start=13)
    ]


class TestPreparedCandidates:
    @pytest.mark.parametrize(
        "purposes",
        [frozenset(Purpose), frozenset(Purpose) - {Purpose.PERSONALIZATION}, frozenset()],
        ids=["all", "no-personalization", "none"],
    )
    @pytest.mark.parametrize("allow_nothing", [False, True])
    def test_vectors_kept_per_tip_equal_hashing_the_snapshot_features(
        self, purposes: frozenset[Purpose], allow_nothing: bool
    ) -> None:
        tips = list(load_library().tips)
        assembler = FeatureAssembler()
        for local_now in (NOW.astimezone(PARIS), SATURDAY_MORNING, datetime(2026, 3, 4, 19, 0, tzinfo=PARIS)):
            context = assembler.assemble(
                local_now=local_now,
                history=personal_history(),
                tips=tips[::2] if local_now == SATURDAY_MORNING else tips,
                purposes=purposes,
                allow_nothing=allow_nothing,
            )
            candidates = context.candidates
            assert candidates is not None
            features = list(context.actions.values())

            assert list(candidates) == features
            np.testing.assert_array_equal(candidates.action, FEATURE_SPEC.action_matrix(features))

    def test_a_changed_tip_gets_a_new_row(self) -> None:
        assembler = FeatureAssembler()
        before = make_tip("walk", minutes=5)
        after = make_tip("walk", minutes=60, effort=Effort.HIGH)
        first = assembler.assemble(local_now=NOW, history=[], tips=[before], purposes=frozenset(Purpose))
        second = assembler.assemble(local_now=NOW, history=[], tips=[after], purposes=frozenset(Purpose))

        assert first.candidates is not None
        assert second.candidates is not None
        np.testing.assert_array_equal(first.candidates.action, FEATURE_SPEC.action_matrix([first.actions["walk"]]))
        np.testing.assert_array_equal(second.candidates.action, FEATURE_SPEC.action_matrix([second.actions["walk"]]))
        assert not np.array_equal(first.candidates.action, second.candidates.action)


class TestCategoryStats:
    def test_counts_shows_and_reactions_per_category(self) -> None:
        history = [
            show(Category.FOCUS, Reaction.DONE, hours_ago=20),
            show(Category.FOCUS, Reaction.DISMISS, hours_ago=21),
            show(Category.FOCUS, None, hours_ago=22),
            show(Category.HYDRATION, Reaction.DONE, hours_ago=23),
        ]

        stats = category_stats(history)

        assert set(stats) == {Category.FOCUS, Category.HYDRATION}
        assert stats[Category.FOCUS].shown == 3
        assert stats[Category.FOCUS].reactions == {Reaction.DONE: 1, Reaction.DISMISS: 1}
        assert stats[Category.HYDRATION].shown == 1
        assert stats[Category.HYDRATION].reactions == {Reaction.DONE: 1}

    def test_category_shown_without_reactions_has_empty_counts(self) -> None:
        stats = category_stats([show(Category.SOCIAL, None)])

        assert stats[Category.SOCIAL].shown == 1
        assert stats[Category.SOCIAL].reactions == {}
        assert stats[Category.SOCIAL].rate(Reaction.DONE) == 0.0

    def test_rate_divides_by_shows_plus_one(self) -> None:
        stats = CategoryStats(shown=3, reactions=Counter({Reaction.DONE: 1}))

        assert stats.rate(Reaction.DONE) == pytest.approx(1 / 4)
        assert stats.rate(Reaction.SNOOZE) == 0.0

    def test_empty_stats_have_zero_rates(self) -> None:
        assert CategoryStats().rate(Reaction.NOT_FOR_ME) == 0.0


class TestPurposeBinding:
    def test_every_feature_of_the_spec_declares_its_purpose(self) -> None:
        assert set(FEATURE_SPEC.shared) | set(FEATURE_SPEC.action) == set(FEATURE_PURPOSES)
        personal = {name for name, purpose in FEATURE_PURPOSES.items() if purpose is Purpose.PERSONALIZATION}
        assert personal == {"user_category_shown", *(f"user_category_{r}" for r in Reaction)}
        calendar = {name for name, purpose in FEATURE_PURPOSES.items() if purpose is Purpose.CALENDAR_SIGNALS}
        assert calendar == {"busy_now", "minutes_to_next_event", "free_block_minutes"} == set(CALENDAR_FEATURES)
        # Nothing else about the moment needs consent: it is the context any decision has.
        assert all(FEATURE_PURPOSES[name] is None for name in FEATURE_SPEC.shared if name not in calendar)

    def test_without_personalization_the_history_gives_no_feature(self) -> None:
        history = [show(Category.MOVEMENT, Reaction.DONE), show(Category.MOVEMENT, Reaction.DONE, hours_ago=40)]
        tips = [make_tip("walk")]
        local_now = NOW.astimezone(PARIS)
        with_consent = FeatureAssembler().assemble(
            local_now=local_now, history=history, tips=tips, purposes=frozenset(Purpose)
        )
        without = FeatureAssembler().assemble(
            local_now=local_now,
            history=history,
            tips=tips,
            purposes=frozenset(Purpose) - {Purpose.PERSONALIZATION},
        )
        assert with_consent.actions["walk"]["user_category_done"] > 0
        assert without.actions["walk"] == {
            key: value for key, value in with_consent.actions["walk"].items() if not key.startswith("user_")
        }
        assert without.shared == with_consent.shared
        assert without.personalized is False
        assert without.snapshot()["purposes"] == sorted(p.value for p in Purpose if p is not Purpose.PERSONALIZATION)

    def test_bind_drops_features_of_withheld_purposes_and_refuses_undeclared_ones(self) -> None:
        features = {"bias": 1.0, "user_category_shown": 0.2}
        assert bind(features, frozenset()) == {"bias": 1.0}
        assert bind(features, frozenset({Purpose.PERSONALIZATION})) == features
        with pytest.raises(UndeclaredFeature, match="calendar_busy"):
            bind({"calendar_busy": 1.0}, frozenset(Purpose))


def _scaled(minutes: float) -> float:
    return round(math.log1p(minutes) / math.log1p(240), 6)


class TestCalendarFeatures:
    def test_inside_a_busy_interval_the_person_is_busy_with_no_free_block(self) -> None:
        busy = [
            (NOW - timedelta(minutes=10), NOW + timedelta(minutes=20)),
            (NOW + timedelta(hours=1), NOW + timedelta(hours=2)),
        ]
        assert calendar_features(NOW, busy) == {"busy_now": 1.0, "minutes_to_next_event": _scaled(60)}

    def test_between_events_the_free_block_runs_to_the_next_one(self) -> None:
        busy = [
            (NOW - timedelta(hours=1), NOW - timedelta(minutes=5)),
            (NOW + timedelta(minutes=30), NOW + timedelta(hours=1)),
        ]
        features = calendar_features(NOW, busy)
        assert features == {"minutes_to_next_event": _scaled(30), "free_block_minutes": _scaled(30)}
        assert 0.0 < features["free_block_minutes"] < 1.0

    def test_a_free_calendar_reads_as_free_for_the_whole_horizon(self) -> None:
        assert calendar_features(NOW, []) == {"minutes_to_next_event": 1.0, "free_block_minutes": 1.0}
        far = [(NOW + timedelta(hours=7), NOW + timedelta(hours=8))]
        assert calendar_features(NOW, far) == {"minutes_to_next_event": 1.0, "free_block_minutes": 1.0}

    def test_an_event_starting_now_makes_the_person_busy(self) -> None:
        assert calendar_features(NOW, [(NOW, NOW + timedelta(minutes=30))]) == {
            "busy_now": 1.0,
            "minutes_to_next_event": 1.0,
        }

    def test_the_assembler_uses_the_calendar_only_with_its_consent(self) -> None:
        busy = [(NOW - timedelta(minutes=5), NOW + timedelta(minutes=25))]
        tips = [make_tip("walk")]
        local_now = NOW.astimezone(PARIS)
        granted = FeatureAssembler().assemble(
            local_now=local_now, history=[], tips=tips, purposes=frozenset({Purpose.CALENDAR_SIGNALS}), busy=busy
        )
        assert granted.shared["busy_now"] == 1.0
        withheld = FeatureAssembler().assemble(
            local_now=local_now,
            history=[],
            tips=tips,
            purposes=frozenset(set(Purpose) - {Purpose.CALENDAR_SIGNALS}),
            busy=busy,
        )
        assert not set(withheld.shared) & set(CALENDAR_FEATURES)
        no_calendar = FeatureAssembler().assemble(
            local_now=local_now, history=[], tips=tips, purposes=frozenset(Purpose), busy=None
        )
        assert not set(no_calendar.shared) & set(CALENDAR_FEATURES)

    def test_the_calendar_features_fit_the_spec(self) -> None:
        busy = [
            (NOW - timedelta(minutes=5), NOW + timedelta(minutes=25)),
            (NOW + timedelta(hours=1), NOW + timedelta(hours=2)),
        ]
        context = FeatureAssembler().assemble(
            local_now=NOW, history=[], tips=[make_tip("walk")], purposes=frozenset(Purpose), busy=busy
        )
        row = FEATURE_SPEC.row(context.shared, context.actions["walk"])
        assert row[FEATURE_SPEC.shared_index("busy_now")] != 0.0
