"""The embedded Postgres sizes its cache to the host, once, and keeps a size someone chose."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from spectron.embedded import (
    SHARED_BUFFERS_MAX,
    SHARED_BUFFERS_MIN,
    EmbeddedPostgres,
    shared_buffers_for,
)
from spectron.host import physical_memory
from tests.fault_support import fresh_home

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh Spectron home (see fresh_home)."""
    with fresh_home() as path:
        yield path


def _shared_buffers(uri: str) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_cache_is_an_eighth_of_the_host_within_bounds() -> None:
    assert shared_buffers_for(None) == SHARED_BUFFERS_MIN
    assert shared_buffers_for(512 << 20) == SHARED_BUFFERS_MIN
    assert shared_buffers_for(16 << 30) == 2 << 30
    assert shared_buffers_for(256 << 30) == SHARED_BUFFERS_MAX


async def test_a_new_home_starts_with_the_hosts_cache_and_keeps_a_chosen_one(home: Path) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, home)
    try:
        # applied at once: the server was restarted right after its home was created
        assert _shared_buffers(server.uri) == shared_buffers_for(physical_memory())
        with psycopg.connect(server.uri, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '64MB'")  # an operator's choice
    finally:
        await asyncio.to_thread(server.close)
    again = await asyncio.to_thread(EmbeddedPostgres, home)
    try:
        assert _shared_buffers(again.uri) == 64 << 20
    finally:
        await asyncio.to_thread(again.close)


_OPEN_AND_USE = """
import asyncio, sys
from pathlib import Path
import psycopg
from spectron.db import prepare_database
from spectron.embedded import EmbeddedPostgres
handle = EmbeddedPostgres(Path(sys.argv[1]))
asyncio.run(prepare_database(handle.uri, "spectron", 8))  # migrations, as every opening runs
with psycopg.connect(handle.uri) as conn:
    for _ in range(4):
        conn.execute("SELECT pg_sleep(0.25)")
print("used", flush=True)
"""

_OPEN_AND_HOLD = """
import sys, time
from pathlib import Path
from spectron.embedded import EmbeddedPostgres
EmbeddedPostgres(Path(sys.argv[1]))
print("open", flush=True)
time.sleep(600)
"""


def _python(code: str, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )


def test_processes_opening_a_new_home_at_once_all_use_it() -> None:
    """None restarts the new server (to apply its cache size) under another's connections."""
    for _ in range(2):
        with fresh_home() as home:
            openers = [_python(_OPEN_AND_USE, home) for _ in range(3)]
            outputs = [proc.communicate(timeout=180)[0] for proc in openers]
            for proc, output in zip(openers, outputs, strict=True):
                assert proc.returncode == 0 and output.endswith("used\n"), output[-2000:]


async def test_a_process_killed_holding_a_handle_does_not_keep_the_server_up(home: Path) -> None:
    holder = _python(_OPEN_AND_HOLD, home)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        mine = await asyncio.to_thread(EmbeddedPostgres, home)
        holder.kill()  # no close, no atexit: its handle stays recorded
        holder.wait()
        await asyncio.to_thread(mine.close)
        assert not mine.running(), "the last live handle stops the server"
    finally:
        holder.kill()
        holder.wait()
