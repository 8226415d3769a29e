"""Unit tests of reading and validating the advice library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tipwise.advice import DEFAULT_LIBRARY, AdviceLibraryError, Category, Condition, Effort, TimeOfDay, load_library
from tipwise.advice.loader import parse_library
from tipwise.kernel.errors import ConfigurationError

SOURCE = "test-library.toml"


def entry(tip_id: str = "focus-one-tab", **overrides: Any) -> dict[str, Any]:
    """Return a valid raw [[tip]] entry, with `overrides` applied."""
    raw: dict[str, Any] = {
        "id": tip_id,
        "title": "Keep one tab open",
        "body": "Close every tab you do not need for the task in front of you.",
        "category": "focus",
        "effort": "low",
        "minutes": 2,
        "times_of_day": ["morning", "afternoon"],
    }
    raw.update(overrides)
    return raw


def document(
    *entries: dict[str, Any], schema_version: object = 1, library_version: object = "2026.1"
) -> dict[str, Any]:
    return {"schema_version": schema_version, "library_version": library_version, "tip": list(entries)}


def parse_error(doc: dict[str, Any]) -> str:
    with pytest.raises(AdviceLibraryError) as excinfo:
        parse_library(doc, source=SOURCE)
    return str(excinfo.value)


VALID_TOML = """\
schema_version = 1
library_version = "2026.test"

[[tip]]
id = "sleep-dim-lights"
title = "Dim the lights an hour before bed"
body = "Switch to lamps and lower the brightness of your screens an hour before you want to sleep."
category = "sleep"
effort = "low"
minutes = 1
times_of_day = ["evening", "night"]
condition = "weekday"
"""


class TestBundledLibrary:
    def test_bundled_library_loads_from_the_default_path(self) -> None:
        library = load_library()

        assert library.version
        assert library == load_library(DEFAULT_LIBRARY)

    def test_bundled_library_has_at_least_eighty_tips(self) -> None:
        assert len(load_library().tips) >= 80

    def test_bundled_library_covers_every_category(self) -> None:
        assert {tip.category for tip in load_library().tips} == set(Category)

    def test_bundled_library_ids_are_unique(self) -> None:
        ids = [tip.id for tip in load_library().tips]

        assert len(ids) == len(set(ids))

    def test_every_bundled_tip_is_active_and_has_a_part_of_the_day(self) -> None:
        tips = load_library().tips

        assert all(tip.active for tip in tips)
        assert all(tip.times_of_day for tip in tips)

    def test_work_hours_tips_are_meant_for_a_part_of_the_day_inside_work_hours(self) -> None:
        # Work hours (9:00-17:00) overlap only the morning and the afternoon.
        work_hours_tips = [tip for tip in load_library().tips if tip.condition is Condition.WORK_HOURS]

        assert work_hours_tips
        assert all(tip.times_of_day & {TimeOfDay.MORNING, TimeOfDay.AFTERNOON} for tip in work_hours_tips)


class TestParseLibrary:
    def test_valid_document_becomes_tips_in_file_order(self) -> None:
        library = parse_library(
            document(entry("b-tip"), entry("a-tip", condition="weekend", effort="high", title="  Padded title  ")),
            source=SOURCE,
        )

        assert library.version == "2026.1"
        assert [tip.id for tip in library.tips] == ["b-tip", "a-tip"]
        second = library.tips[1]
        assert second.title == "Padded title"
        assert second.category is Category.FOCUS
        assert second.effort is Effort.HIGH
        assert second.condition is Condition.WEEKEND
        assert second.times_of_day == frozenset({TimeOfDay.MORNING, TimeOfDay.AFTERNOON})
        assert library.tips[0].condition is None

    def test_bad_effort_names_the_entry_and_the_field(self) -> None:
        message = parse_error(document(entry("fine"), entry("x", effort="huge")))

        assert SOURCE in message
        assert "tip #2 (id 'x')" in message
        assert "effort:" in message

    def test_missing_field_names_the_entry_and_the_field(self) -> None:
        broken = entry("x")
        del broken["title"]

        message = parse_error(document(entry("fine"), broken))

        assert "tip #2 (id 'x')" in message
        assert "title: Field required" in message

    def test_entry_without_id_is_named_by_its_position(self) -> None:
        broken = entry()
        del broken["id"]

        message = parse_error(document(broken))

        assert "tip #1: id: Field required" in message

    def test_duplicate_id_names_the_second_entry(self) -> None:
        message = parse_error(document(entry("x"), entry("other"), entry("x")))

        assert "tip #3 (id 'x')" in message
        assert "duplicate id" in message

    def test_unknown_extra_key_names_the_entry_and_the_key(self) -> None:
        message = parse_error(document(entry("fine"), entry("x", colour="blue")))

        assert "tip #2 (id 'x')" in message
        assert "colour: Extra inputs are not permitted" in message

    def test_minutes_out_of_range_names_the_field(self) -> None:
        message = parse_error(document(entry("x", minutes=0)))

        assert "tip #1 (id 'x')" in message
        assert "minutes:" in message

    def test_id_that_is_not_a_slug_is_rejected(self) -> None:
        message = parse_error(document(entry("Not A Slug")))

        assert "tip #1 (id 'Not A Slug')" in message
        assert "id:" in message

    def test_wrong_schema_version_is_rejected_with_both_versions(self) -> None:
        message = parse_error(document(entry(), schema_version=2))

        assert SOURCE in message
        assert "schema_version must be 1, got 2" in message

    def test_missing_schema_version_is_rejected(self) -> None:
        doc = document(entry())
        del doc["schema_version"]

        assert "schema_version must be 1, got None" in parse_error(doc)

    def test_empty_library_version_is_rejected(self) -> None:
        assert "library_version must be a non-empty string" in parse_error(document(entry(), library_version=""))

    def test_document_without_tips_is_rejected(self) -> None:
        assert "no [[tip]] entries" in parse_error(document())

    def test_library_errors_are_configuration_errors_with_their_own_code(self) -> None:
        with pytest.raises(ConfigurationError) as excinfo:
            parse_library(document(entry(), schema_version=3), source=SOURCE)

        assert isinstance(excinfo.value, AdviceLibraryError)
        assert excinfo.value.code == "advice_library_invalid"
        assert excinfo.value.problem()["code"] == "advice_library_invalid"


class TestLoadLibrary:
    def test_valid_file_is_loaded(self, tmp_path: Path) -> None:
        path = tmp_path / "library.toml"
        path.write_text(VALID_TOML, encoding="utf-8")

        library = load_library(path)

        assert library.version == "2026.test"
        assert [tip.id for tip in library.tips] == ["sleep-dim-lights"]
        assert library.tips[0].condition is Condition.WEEKDAY

    def test_non_toml_file_gives_a_clear_message(self, tmp_path: Path) -> None:
        path = tmp_path / "library.toml"
        path.write_text("this is [not toml\n", encoding="utf-8")

        with pytest.raises(AdviceLibraryError) as excinfo:
            load_library(path)

        assert str(excinfo.value).startswith(f"advice library {path}: not valid TOML")

    def test_missing_file_gives_a_clear_message(self, tmp_path: Path) -> None:
        path = tmp_path / "missing.toml"

        with pytest.raises(AdviceLibraryError) as excinfo:
            load_library(path)

        assert str(excinfo.value) == f"advice library {path}: file not found"

    def test_validation_errors_name_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "library.toml"
        path.write_text(VALID_TOML.replace('effort = "low"', 'effort = "huge"'), encoding="utf-8")

        with pytest.raises(AdviceLibraryError) as excinfo:
            load_library(path)

        message = str(excinfo.value)
        assert str(path) in message
        assert "tip #1 (id 'sleep-dim-lights')" in message
        assert "effort:" in message
