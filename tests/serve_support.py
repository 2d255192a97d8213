"""`spectron serve` as a real process for the tests that talk to it over the network."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from spectron.log.tansu import free_port

READY_WITHIN = 120.0  # seconds: generous, CI may be slow and busy


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """`spectron serve` on a free port with `env`, output to `log`; yields its URL once ready."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spectron.cli", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            assert proc.poll() is None, f"spectron serve exited: {log.read_text()}"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "spectron serve did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
