"""Every table that holds a user id is exported and erased by some module's personal-data port."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Uuid

from tests.support.privacy import import_every_model, tables_holding_user_ids
from tipwise.auth import AuthPersonalData
from tipwise.events import EventsPersonalData
from tipwise.integrations import IntegrationsPersonalData
from tipwise.kernel.privacy import PersonalData
from tipwise.ml.pipelines import LearnerPersonalData
from tipwise.profile import ProfilePersonalData
from tipwise.recommender import RecommenderPersonalData

PORTS: list[PersonalData] = [
    AuthPersonalData(),
    ProfilePersonalData(),
    IntegrationsPersonalData(),
    RecommenderPersonalData(),
    LearnerPersonalData(),
    EventsPersonalData(),
]


def uncovered(metadata: MetaData, ports: list[PersonalData]) -> set[str]:
    covered = set().union(*(port.tables for port in ports))
    return set(tables_holding_user_ids(metadata)) - covered


class TestCoverage:
    def test_every_table_holding_a_user_id_has_an_exporter_and_an_eraser(self) -> None:
        metadata = import_every_model()
        assert uncovered(metadata, PORTS) == set()

    def test_the_walk_finds_the_tables_we_know_hold_user_ids(self) -> None:
        found = set(tables_holding_user_ids(import_every_model()))
        assert {
            "auth_user",
            "auth_identity",
            "profile_preferences",
            "profile_consent",
            "recommender_tip_instance",
            "recommender_feedback",
            "ml_pending_decision",
            "events_outbox",
            "events_log",
            "events_data_key",
        } <= found
        # Tables without anything about a person are not swept in.
        assert not {"advice_tip", "ml_model", "events_tracking", "auth_oidc_login"} & found

    def test_a_new_table_with_a_user_id_and_no_exporter_fails_the_check(self) -> None:
        metadata = MetaData()
        for table in import_every_model().tables.values():
            table.to_metadata(metadata)
        Table("newmodule_note", metadata, Column("id", Uuid, primary_key=True), Column("user_id", Uuid))
        assert uncovered(metadata, PORTS) == {"newmodule_note"}

    def test_port_names_are_distinct_file_names(self) -> None:
        names = [port.name for port in PORTS]
        assert len(set(names)) == len(names)
        assert all(name.isidentifier() for name in names)
