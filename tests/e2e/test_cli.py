"""The `tipwise` command line, as a person runs it: through environment variables and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.consents import registered
from tests.support.decisions import decide_and_react
from tipwise.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "TIPWISE_DATA_DIR": str(tmp_path / "data"),
        "TIPWISE_AUTH_ARGON2_TIME_COST": "1",
        "TIPWISE_AUTH_ARGON2_MEMORY_COST_KIB": "64",
        "TIPWISE_LOG_LEVEL": "WARNING",
    }


class TestCommandLine:
    def test_advice_check_summarizes_the_bundled_library(self) -> None:
        result = runner.invoke(app, ["advice", "check"])
        assert result.exit_code == 0
        assert "90 tips, all valid" in result.output
        assert "movement" in result.output

    def test_advice_check_names_the_bad_entry_and_fails(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.toml"
        bad.write_text('schema_version = 1\nlibrary_version = "x"\n[[tip]]\nid = "Bad Id"\n')
        result = runner.invoke(app, ["advice", "check", str(bad)])
        assert result.exit_code == 1
        assert "tip #1 (id 'Bad Id')" in result.output

    def test_migrate_then_replay_on_an_empty_log(self, env: dict[str, str]) -> None:
        migrated = runner.invoke(app, ["migrate"], env=env)
        assert migrated.exit_code == 0, migrated.output
        assert "upgraded to" in migrated.output
        assert "advice library: 90 tips" in migrated.output
        assert "already current" in runner.invoke(app, ["migrate"], env=env).output
        replayed = runner.invoke(app, ["replay"], env=env)
        assert replayed.exit_code == 0, replayed.output
        assert "linucb" in replayed.output
        assert "identical" in replayed.output

    def test_commands_that_need_the_schema_refuse_an_unmigrated_database(self, env: dict[str, str]) -> None:
        result = runner.invoke(app, ["replay"], env=env)
        assert result.exit_code == 1
        assert "run `tipwise migrate` first" in result.output

    def test_operator_grant_needs_an_existing_account(self, env: dict[str, str]) -> None:
        runner.invoke(app, ["migrate"], env=env)
        result = runner.invoke(app, ["operator", "grant", "nobody@example.com"], env=env)
        assert result.exit_code == 1
        assert "no account with the email 'nobody@example.com'" in result.output

    def test_a_bad_setting_is_reported_by_name(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from tipwise.cli import main

        monkeypatch.setenv("TIPWISE_PORT", "0")
        monkeypatch.setattr("sys.argv", ["tipwise", "migrate"])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 2
        assert "TIPWISE_PORT: Value error, port must be between 1 and 65535" in capsys.readouterr().err

    def test_replay_matches_the_live_models_after_learning(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from tipwise.bootstrap import build

        assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        container = build()
        try:
            user = registered(container, "cli@example.com")
            for n in range(5):
                decide_and_react(container, user, key=f"k{n}")
            container.worker.run_once()
        finally:
            container.close()
        result = runner.invoke(app, ["replay"], env=env)
        assert result.exit_code == 0, result.output
        # 6 consent.changed, then 5 decisions and 5 reactions.
        assert "linucb           rebuilt from log up to position 16: 5 rewards, identical" in result.output

    def test_integrations_sync_reads_every_feed_with_all_and_skips_one_without_consent(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from tests.support.calendar_feed import calendar_feed
        from tests.support.calendars import WORK_CALENDAR
        from tipwise.bootstrap import build
        from tipwise.profile import CONSENT_WORDING_VERSION, ConsentsPut, Purpose

        env = {**env, "TIPWISE_INTEGRATIONS_ALLOW_PRIVATE_ADDRESSES": "true"}
        assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with calendar_feed(WORK_CALENDAR) as feed:
            container = build()
            try:
                keeps = registered(container, "keeps@example.com")
                withdraws = registered(container, "withdraws@example.com")
                container.integrations.add_calendar(user_id=keeps, url=feed.url)
                container.integrations.add_calendar(user_id=withdraws, url=feed.url)
                container.profile.record_consents(
                    user_id=withdraws,
                    decisions=ConsentsPut(
                        wording_version=CONSENT_WORDING_VERSION, purposes={Purpose.CALENDAR_SIGNALS: False}
                    ),
                )
            finally:
                container.close()
            due = runner.invoke(app, ["integrations", "sync"], env=env)
            assert due.exit_code == 0, due.output
            assert "calendar feeds: 0 read, 0 not modified, 0 failed, 0 paused" in due.output
            everything = runner.invoke(app, ["integrations", "sync", "--all"], env=env)
            assert everything.exit_code == 0, everything.output
            assert "calendar feeds: 0 read, 1 not modified, 0 failed, 1 paused (no consent)" in everything.output
            assert len(feed.requests) == 3  # two connections, then one conditional read
