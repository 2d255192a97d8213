"""Helpers of the fault tests: wait for a condition, find and kill an embedded postmaster."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil

BOUND = 120.0  # seconds any awaited condition may take on a slow, busy machine


async def eventually(check: Callable[[], Awaitable[bool]], what: str, bound: float = BOUND) -> None:
    """Poll `check` until it holds; fail after `bound` seconds."""
    deadline = time.monotonic() + bound
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound:.0f}s: {what}")
        await asyncio.sleep(0.1)


def postmaster(home: Path) -> psutil.Process | None:
    """The running postmaster of a home, if any."""
    try:
        pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
        process = psutil.Process(pid)
        running = process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres"
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return process if running else None


def server_log(home: Path) -> str:
    """The end of the embedded server's log and its postmaster.pid, for failure messages."""
    pgdata = home / "pgdata"
    pidfile = pgdata / "postmaster.pid"
    pid = pidfile.read_text() if pidfile.exists() else "(no postmaster.pid)"
    return f"{pid}\n{(pgdata / 'log').read_text()[-3000:]}"


async def kill_postmaster(home: Path) -> int:
    """kill -9 the postmaster and wait until it is gone; its pid."""
    process = postmaster(home)
    assert process is not None, "no postmaster to kill"
    process.send_signal(signal.SIGKILL)

    async def gone() -> bool:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE

    await eventually(gone, "the killed postmaster exits")
    return process.pid


@contextlib.contextmanager
def fresh_home() -> Iterator[Path]:
    """A Spectron home outside pytest's 0700 temp root, which Postgres (a user of its own when the
    suite runs as root) must traverse whenever it starts, and which other pytest runs re-protect."""
    root = Path(tempfile.mkdtemp(prefix="spectron-fault-"))
    try:
        yield root / "home"
    finally:
        shutil.rmtree(root, ignore_errors=True)
