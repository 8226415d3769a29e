"""`tipwise bench http`: `POST /v1/tips/next` over loopback next to a hello-world route of the same server.

The app runs in its own process (one uvicorn worker, as `make up` runs it) on
a throwaway SQLite database; wrk drives it with 32 connections for a bounded
time, first on a hello-world POST route added to the same app, then on
`/v1/tips/next` with bearer tokens rotated over many accounts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from tipwise.bench.common import Result, console, print_table, write_json

WRK_SCRIPT = """
local tokens = {}
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[(i %% #tokens) + 1],
                   ["Content-Type"] = "application/json"}
  return wrk.format("POST", "%(path)s", headers, "{}")
end
"""


def register(app: typer.Typer) -> None:
    app.command("http")(http)


def http(
    duration: Annotated[int, typer.Option(help="Seconds per wrk run.")] = 10,
    connections: Annotated[int, typer.Option(help="Concurrent connections.")] = 32,
    users: Annotated[int, typer.Option(help="Accounts whose tokens the load rotates over.")] = 200,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results here as JSON.")] = None,
    without_decision: Annotated[
        bool,
        typer.Option(
            "--without-decision",
            help="Also measure /v1/tips/next's request and answer around a decision made once: what all but it costs.",
        ),
    ] = False,
) -> None:
    """Measure requests/s and latency of `POST /v1/tips/next` next to hello-world routes (needs wrk).

    The hello-world baseline is an async route; a sync one shows what the
    thread-pool hop of a sync endpoint (as the app's are) costs on its own.
    With `--without-decision`, a fourth row runs last: the same bearer token
    check, body and response model as `/v1/tips/next`, answering a decision made
    once at startup (the rate `/v1/tips/next` would reach if deciding cost nothing).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        console.print("[red]error:[/] wrk is not installed (Debian: `apt-get install wrk`; `make bench` does it)")
        raise typer.Exit(1)
    with tempfile.TemporaryDirectory(prefix="tipwise-bench-http-") as tmp:
        folder = Path(tmp)
        port = _free_port()
        server = _start_server(folder, port=port, users=users, without_decision=without_decision)
        try:
            base = f"http://127.0.0.1:{port}"
            results = [
                _wrk(wrk, base, "/bench/hello", folder, "hello-world POST", duration, connections),
                _wrk(wrk, base, "/bench/hello-sync", folder, "hello-world POST, sync", duration, connections),
                _wrk(wrk, base, "/v1/tips/next", folder, "POST /v1/tips/next", duration, connections),
            ]
            if without_decision:
                path = "/bench/tips-without-decision"
                results.append(_wrk(wrk, base, path, folder, "same, without the decision", duration, connections))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    hello, _, tips = results[:3]
    ratio = tips.mean / hello.mean if hello.mean else 0.0
    print_table("tipwise bench http (requests/s; latency in ms)", results)
    console.print(f"/v1/tips/next reaches {ratio:.0%} of the hello-world rate; its p99 is {tips.p99:.1f} ms")
    if without_decision and hello.mean:
        console.print(f"without the decision, the same request reaches {results[3].mean / hello.mean:.0%} of it")
    if json_path is not None:
        write_json(json_path, "http", results, ratio_to_hello=ratio, connections=connections, duration=duration)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_server(folder: Path, *, port: int, users: int, without_decision: bool = False) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIPWISE_DATA_DIR": str(folder / "data"),
        "TIPWISE_LOG_LEVEL": "WARNING",
        "TIPWISE_DATABASE_URL": "",
        # Every tip stays eligible, so the load measures decisions, not "nothing to show".
        "TIPWISE_RECOMMENDER_RECENT_WINDOW_HOURS": "0",
        "TIPWISE_AUTH_ARGON2_TIME_COST": "1",
        "TIPWISE_AUTH_ARGON2_MEMORY_COST_KIB": "64",
    }
    env.pop("TIPWISE_DATABASE_URL")
    command = [sys.executable, "-m", "tipwise.bench.http_server", str(port), str(users), str(folder / "tokens.txt")]
    if without_decision:
        command.append("--without-decision")
    server = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the benchmark server exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the benchmark server did not become ready")


LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
SCALE = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(wrk: str, base: str, path: str, folder: Path, name: str, duration: int, connections: int) -> Result:
    script = folder / f"load{path.replace('/', '_')}.lua"
    script.write_text(WRK_SCRIPT % {"tokens": folder / "tokens.txt", "path": path})
    console.print(f"wrk: {name} for {duration} s at {connections} connections ...")
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), base + path]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rate = RATE.search(output)
    percentiles = {m.group(1): float(m.group(2)) * SCALE[m.group(3)] for m in LATENCY.finditer(output)}
    if rate is None or "99" not in percentiles:
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Result(
        name=name,
        mean=float(rate.group(1)),
        std=0.0,
        seconds=float(duration),
        unit="req/s",
        p50=percentiles["50"],
        p99=percentiles["99"],
        extra={"non_2xx": int(errors.group(1)) if errors else 0, "wrk": json.dumps(percentiles)},
    )
