"""Recall (and remember) over HTTP: `spectron serve` in its own process, the httpx client in this one."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from typing import Any

from psycopg import AsyncConnection

from benchmarks.stats import Stopwatch, distribution, rss_mib
from benchmarks.workload import ScopeTree, TextGenerator
from spectron import SpectronClient

HTTP_MISSING = "n/a: server not present (spectron.http.app.create_app not found)"


def server_present() -> bool:
    """True when this Spectron has the HTTP API (spectron.http.app.create_app)."""
    if importlib.util.find_spec("spectron.http") is None:
        return False
    try:
        from spectron.http import app
    except ImportError:
        return False
    return hasattr(app, "create_app")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _create_key(uri: str) -> str:
    """An API key with read and write on every scope; returns its secret."""
    from spectron.http import keys as keystore

    async with await AsyncConnection.connect(uri) as conn:
        await keystore.migrate_keys(conn)
        await conn.set_autocommit(True)
        _, secret = await keystore.create_key(conn, "bench:http", {}, "read,write", "benchmark")
    return secret


def _start_server(uri: str, port: int, embedder: str) -> subprocess.Popen[bytes]:
    """`spectron serve` on loopback against `uri`; the benchmark's own client keeps projecting."""
    env = {
        **os.environ,
        "SPECTRON_DATABASE_URL": uri,
        "SPECTRON_EMBEDDER": embedder,
        "SPECTRON_EXTRACTOR": "none",
        "SPECTRON_RUN_PROJECTORS": "false",
    }
    env.pop("SPECTRON_KAFKA_BOOTSTRAP", None)
    command = [
        sys.executable,
        "-c",
        "from spectron.cli import app; app()",
        "serve",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"spectron serve exited: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("spectron serve did not start listening")


async def http_figures(
    uri: str,
    tree: ScopeTree,
    queries: list[str],
    text: TextGenerator,
    warmup: int,
    ops: int,
    embedder: str = "hashing",
) -> dict[str, Any]:
    """p50/p95/p99 of recall (leaf, org) and remember through the HTTP API on loopback."""
    if not server_present():
        return {"status": HTTP_MISSING}
    secret = await _create_key(uri)
    port = _free_port()
    proc = await asyncio.to_thread(_start_server, uri, port, embedder)
    out: dict[str, Any] = {"status": "measured", "server": f"spectron serve (uvicorn), {embedder}"}
    client = SpectronClient(base_url=f"http://127.0.0.1:{port}", api_key=secret)
    try:
        for level, scope in (("leaf", tree.leaf_scopes[0]), ("org", tree.org_scope)):
            async with client.sessions.create(scope=scope) as session:
                samples: list[float] = []
                for n, query in enumerate(queries[: warmup + ops]):
                    clock = Stopwatch()
                    await session.recall(query, top_k=10)
                    if n >= warmup:
                        samples.append(clock.ms())
                out[f"recall_{level}_hybrid"] = distribution(samples)
        async with client.sessions.create(scope=tree.leaf_scopes[-1]) as session:
            samples = []
            for n in range(warmup + ops):
                clock = Stopwatch()
                await session.remember(text.memory(10_000_000 + n), metadata={"http": n})
                if n >= warmup:
                    samples.append(clock.ms())
            out["remember"] = distribution(samples)
        out["server_rss_mib"] = rss_mib(proc.pid)
    finally:
        await client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return out
