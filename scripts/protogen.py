"""Generate the Python code and typed stubs of the event schemas in `proto/`.

    python scripts/protogen.py [OUT]      # OUT defaults to src

Runs the protoc bundled with grpcio-tools and the mypy-protobuf plugin of the
same virtualenv, on the .proto files in sorted order, so the output depends only
on the pinned tool versions and the schemas. `make proto` calls this; a test
runs it into a temporary directory and compares with the committed code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("tipwise/events/v1")


def generate(out: Path) -> list[Path]:
    """Write `*_pb2.py` and `*_pb2.pyi` for every schema under `out`; return the written files."""
    target = out / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    # A schema that was removed must not leave its generated module behind.
    for stale in [*target.glob("*_pb2.py"), *target.glob("*_pb2.pyi")]:
        stale.unlink()
    sources = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE}")
    # protoc finds the mypy plugin (protoc-gen-mypy) on PATH: use this virtualenv's.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    subprocess.run(  # noqa: S603 - our interpreter and the repository's schemas
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={PROTO_ROOT}",
            f"--python_out={out}",
            f"--mypy_out=quiet:{out}",
            *sources,
        ],
        check=True,
        cwd=PROTO_ROOT,
        env=env,
    )
    return sorted([*target.glob("*_pb2.py"), *target.glob("*_pb2.pyi")])


if __name__ == "__main__":
    destination = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "src"
    written = generate(destination.resolve())
    sys.stdout.write(f"generated {len(written)} files into {destination / PACKAGE}\n")
