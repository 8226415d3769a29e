"""The event schemas: generated code in sync with proto/, and buf guarding compatibility with the last release."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GENERATED = ROOT / "src" / "tipwise" / "events" / "v1"
RELEASED = ROOT / "proto" / "released" / "tipwise-events-v1.binpb"
TIP_DECIDED = Path("proto/tipwise/events/v1/tip_decided.proto")


def _generated_files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted([*directory.glob("*_pb2.py"), *directory.glob("*_pb2.pyi")])}


class TestGeneratedCode:
    def test_the_committed_code_is_what_make_proto_generates_now(self, tmp_path: Path) -> None:
        command = [sys.executable, str(ROOT / "scripts" / "protogen.py"), str(tmp_path)]
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - our interpreter and script
        fresh = _generated_files(tmp_path / "tipwise" / "events" / "v1")
        committed = _generated_files(GENERATED)
        assert sorted(fresh) == sorted(committed), "generated modules differ from the schemas: run `make proto`"
        stale = [name for name in fresh if fresh[name] != committed[name]]
        assert stale == [], f"stale generated code, run `make proto`: {stale}"


@pytest.fixture(scope="module")
def buf() -> str:
    """The pinned buf that `make tools` installs; its absence is a failure, never a skip."""
    path = Path(os.environ.get("TIPWISE_BUF", ROOT / ".tools" / "node_modules" / ".bin" / "buf"))
    if not path.is_file():
        pytest.fail(f"buf is not installed at {path}: run `make tools` (or `make test`, which installs it)")
    return str(path)


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    """A copy of the buf workspace (buf.yaml and the .proto files) to change freely."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto" / "tipwise", tmp_path / "proto" / "tipwise")
    return tmp_path


def _run(buf: str, workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([buf, *args], cwd=workspace, capture_output=True, text=True, check=False)  # noqa: S603


def _breaking(buf: str, workspace: Path) -> subprocess.CompletedProcess[str]:
    return _run(buf, workspace, "breaking", "--against", str(RELEASED))


def _edit(workspace: Path, old: str, new: str) -> None:
    path = workspace / TIP_DECIDED
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


class TestBuf:
    def test_the_schemas_pass_lint_and_are_compatible_with_the_last_release(self, buf: str) -> None:
        lint = _run(buf, ROOT, "lint")
        assert lint.returncode == 0, lint.stdout + lint.stderr
        breaking = _breaking(buf, ROOT)
        assert breaking.returncode == 0, breaking.stdout + breaking.stderr

    def test_an_unchanged_copy_is_compatible(self, buf: str, schemas: Path) -> None:
        result = _breaking(buf, schemas)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_adding_a_field_is_compatible(self, buf: str, schemas: Path) -> None:
        _edit(schemas, "double propensity = 9;", "double propensity = 9;\n  string note = 20;")
        result = _breaking(buf, schemas)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_renumbering_a_field_breaks(self, buf: str, schemas: Path) -> None:
        _edit(schemas, "double propensity = 9;", "double propensity = 21;")
        result = _breaking(buf, schemas)
        assert result.returncode != 0
        deleted = 'Previously present field "9" with name "propensity" on message "TipDecided" was deleted'
        assert deleted in result.stdout

    def test_removing_a_field_breaks(self, buf: str, schemas: Path) -> None:
        _edit(schemas, "double propensity = 9;", "")
        result = _breaking(buf, schemas)
        assert result.returncode != 0
        assert '"propensity" on message "TipDecided" was deleted' in result.stdout

    def test_changing_a_field_type_breaks(self, buf: str, schemas: Path) -> None:
        _edit(schemas, "int64 model_version = 5;", "string model_version = 5;")
        result = _breaking(buf, schemas)
        assert result.returncode != 0
        assert 'Field "5" with name "model_version" on message "TipDecided" changed type' in result.stdout

    def test_lint_refuses_a_field_name_that_is_not_lower_snake_case(self, buf: str, schemas: Path) -> None:
        _edit(schemas, "string tip_id = 3;", "string tipId = 3;")
        result = _run(buf, schemas, "lint")
        assert result.returncode != 0
        assert 'Field name "tipId" should be lower_snake_case' in result.stdout
