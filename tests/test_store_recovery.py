"""Fault tests: kill -9 the embedded Postgres under a running server and a running client.

The process must notice, answer 503 store-unavailable (with Retry-After) at once meanwhile instead
of holding requests for the pool's timeout, bring the server back by itself (or adopt the one
another process started), lose no acknowledged memory, and stop the restarted server when its last
handle closes. While a test holds the data directory's restart lock the outage lasts as long as
the test needs, so what is asserted about the outage never races the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from spectron import SpectronClient
from spectron.embedded import EmbeddedPostgres, restart_lock_path
from spectron.errors import StoreUnavailable
from spectron.http.app import create_app
from tests.fault_support import (
    BOUND,
    eventually,
    fresh_home,
    kill_postmaster,
    postmaster,
    server_log,
)

STORE_UNAVAILABLE = "https://spectron.dev/problems/store-unavailable"


@contextlib.contextmanager
def restarts_blocked(home: Path) -> Iterator[None]:
    """Hold the lock every restart of the home's server takes: Postgres stays down until exit."""
    with restart_lock_path((home / "pgdata").resolve()).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh Spectron home (see fresh_home)."""
    with fresh_home() as path:
        yield path


def opener(home: Path) -> list[str]:
    """A command that opens (and so starts) the home's embedded Postgres in another process."""
    code = "import sys; from pathlib import Path; from spectron.embedded import EmbeddedPostgres"
    return [sys.executable, "-c", f"{code}; EmbeddedPostgres(Path(sys.argv[1]))", str(home)]


def env_for(home: Path) -> dict[str, str]:
    """The environment of a Spectron process on `home` (fast embedder, no extraction)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRON_")}
    return {
        **env,
        "SPECTRON_HOME": str(home),
        "SPECTRON_EMBEDDER": "hashing",
        "SPECTRON_EXTRACTOR": "none",
    }


def spectron(env: dict[str, str], *args: str) -> str:
    """Run the CLI to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "spectron.cli", *args],
        env=env,
        capture_output=True,
        timeout=BOUND,
        check=True,
    )
    return done.stdout.decode()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_unavailable(response: httpx.Response) -> None:
    """A 503 store-unavailable problem that says when to try again."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == STORE_UNAVAILABLE
    assert int(response.headers["retry-after"]) >= 1


async def test_serve_brings_a_killed_postgres_back(tmp_path: Path, home: Path) -> None:
    env = env_for(home)
    key = json.loads(
        spectron(
            env, "keys", "create", "--principal", "agent:fault", "--scope-floor", "{}",
            "--capabilities", "read,write", "--json",
        ).strip().splitlines()[-1]
    )["secret"]  # fmt: skip
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    serve = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "spectron.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # a request held for the pool's 30 s timeout fails this test rather than passing late
    http = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=20.0,
    )
    try:

        async def ready() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get("/readyz")).status_code == 200
            return False

        await eventually(ready, "spectron serve is ready")
        created = await http.post("/v1/sessions", json={"scope": {"org": "fault"}})
        assert created.status_code == 201, created.text
        session = f"/v1/sessions/{created.json()['session_id']}"
        acknowledged: dict[str, str] = {}

        async def remember(n: int) -> httpx.Response:
            content = f"fault-token-{n} survives a dead database"
            response = await http.post(f"{session}/remember", json={"content": content})
            if response.status_code == 201:
                acknowledged[f"fault-token-{n}"] = response.json()["id"]
            return response

        for n in range(5):
            assert (await remember(n)).status_code == 201

        with restarts_blocked(home):
            await kill_postmaster(home)
            for n in range(5, 10):  # broken connections first, then the watch's verdict
                assert_unavailable(await remember(n))
            assert_unavailable(await http.post(f"{session}/recall", json={"query": "fault"}))
            ready = await http.get("/readyz")  # unauthenticated: the cause stays in the log
            assert ready.status_code == 503 and "see the server log" in ready.text
            assert str(home) not in ready.text
            health = await http.get("/healthz")  # recovering by itself: alive
            assert health.status_code == 200, health.text
            assert "unavailable" in health.json()["detail"]

        attempt = iter(range(10, 100_000))

        async def accepted() -> bool:
            response = await remember(next(attempt))
            if response.status_code != 201:
                assert_unavailable(response)
            return response.status_code == 201

        await eventually(accepted, "remember works again after the restart")
        for n in range(100_000, 100_005):
            assert (await remember(n)).status_code == 201
        assert (await http.get("/healthz")).json()["detail"] == ""
        for token, memory_id in acknowledged.items():
            found = await http.post(
                f"{session}/recall", json={"query": token, "mode": "keyword", "top_k": 3}
            )
            assert found.status_code == 200, found.text
            assert memory_id in [item["id"] for item in found.json()["items"]], token
        restarted = postmaster(home)
        assert restarted is not None
    finally:
        await http.aclose()
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        log.close()
    # the server this process restarted stopped with it: it held the last handle
    await eventually(
        lambda: asyncio.to_thread(lambda: not restarted.is_running()),
        "the restarted Postgres stops",
    )
    assert postmaster(home) is None


async def test_client_survives_a_killed_postgres_restarted_by_another_process(
    home: Path,
) -> None:
    client = SpectronClient(home=home, embedder="hashing", extractor="none")
    try:
        session = await client.sessions.create({"org": "fault"}, "agent:fault")
        acknowledged = {}
        for n in range(5):
            acknowledged[f"fault-token-{n}"] = (await session.remember(f"fault-token-{n} x")).id
        with restarts_blocked(home):
            await kill_postmaster(home)
            for n in range(5, 10):
                with pytest.raises(StoreUnavailable):
                    async with asyncio.timeout(20):  # not the pool's 30 s
                        await session.remember(f"fault-token-{n} x")
        # another process opens the home: it starts Postgres, unless this client's watch won
        starter = await asyncio.to_thread(
            subprocess.run, opener(home), env=env_for(home), capture_output=True, timeout=BOUND
        )
        assert starter.returncode == 0, starter.stderr.decode()

        async def accepted() -> bool:
            try:
                result = await session.remember("fault-token-10 x")
            except StoreUnavailable:
                return False
            acknowledged["fault-token-10"] = result.id
            return True

        await eventually(accepted, "remember works again")
        for n in range(11, 15):
            acknowledged[f"fault-token-{n}"] = (await session.remember(f"fault-token-{n} x")).id
        for token, memory_id in acknowledged.items():
            found = await session.recall(token, top_k=3, mode="keyword")
            assert memory_id in [item.id for item in found.items], token
        restarted = postmaster(home)
        assert restarted is not None
    finally:
        await client.close()
    # the last handle closed: the server another process restarted stops too
    assert not restarted.is_running() or restarted.status() == psutil.STATUS_ZOMBIE
    assert postmaster(home) is None


async def test_last_handle_stops_the_server_another_process_restarted(home: Path) -> None:
    handle = await asyncio.to_thread(EmbeddedPostgres, home)
    await kill_postmaster(home)
    reopened = await asyncio.to_thread(
        subprocess.run, opener(home), env=env_for(home), capture_output=True, timeout=BOUND
    )
    assert reopened.returncode == 0, reopened.stderr.decode()
    restarted = postmaster(home)
    # the other process's exit released only its own handle
    assert restarted is not None, server_log(home)
    await asyncio.to_thread(handle.close)
    assert not restarted.is_running() or restarted.status() == psutil.STATUS_ZOMBIE


async def test_healthz_fails_only_in_a_state_the_process_cannot_leave(home: Path) -> None:
    client = SpectronClient(home=home, embedder="hashing", extractor="none")
    try:
        service = await client.service()
        service.watch.give_up_after = 1.0  # seconds without its database before "failed"
        app = create_app(service)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://spectron"
            ) as http,
        ):
            assert (await http.get("/healthz")).json() == {"status": "ok", "detail": ""}

            async def health(status: int) -> bool:
                response = await http.get("/healthz")
                return response.status_code == status and (
                    status != 200 or response.json()["detail"] == ""
                )

            with restarts_blocked(home):  # the restart keeps failing: the process is stuck
                await kill_postmaster(home)
                await eventually(lambda: health(503), "/healthz says the process cannot recover")
                stuck = await http.get("/healthz")
                assert stuck.json()["type"].endswith("/server-unavailable"), stuck.text
            await eventually(lambda: health(200), "/healthz is fine once the restart succeeds")
    finally:
        await client.close()


async def test_opening_against_a_database_that_is_down_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    """A start that cannot reach Postgres (or loses it while migrating) is a typed, retryable error."""
    client = SpectronClient(
        database=f"postgresql://postgres:@/postgres?host={tmp_path}", embedder="hashing"
    )
    with pytest.raises(StoreUnavailable, match="while opening"):
        await client.service()
    await client.close()
