"""Fault test, Kafka mode: the broker and then Postgres go away and come back under a running client
and two running workers. Nobody is restarted; writes resume by themselves, and every acknowledged
memory ends up in the log and the projection exactly once (and replay equals live).

The broker (Tansu, memory storage: a killed one would come back empty) goes away by SIGSTOP, so
clients meet a broker that no longer answers, and comes back by SIGCONT. Postgres is killed with
-9 and started again by the test, standing for whoever runs the database.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from spectron import SpectronClient
from spectron.config import Settings
from spectron.embedded import EmbeddedPostgres, NotRestartableYet
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import LogUnavailable, StoreUnavailable
from tests.conftest import free_port, start_tansu
from tests.fault_support import BOUND, eventually, fresh_home, kill_postmaster
from tests.kafka_support import run_deployment

# benchmarks/ sits beside the installed packages, not inside them: import it from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.crash import quiesce, verify

pytestmark = pytest.mark.kafka


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh home for the Postgres that the workers and the client use (see fresh_home)."""
    with fresh_home() as path:
        yield path


class Writer:
    """Remembers numbered memories one after another, noting what was acknowledged and refused."""

    def __init__(self, client: SpectronClient) -> None:
        self.client = client
        self.acknowledged: list[uuid.UUID] = []
        self.started = 0  # calls begun
        self.refused: list[str] = []  # error types of calls that failed
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Write until `stop`; a refused write is the caller's to retry, as any agent would."""
        session = await self.client.sessions.create({"org": "kfault"}, "agent:kfault")
        while not self._stop.is_set():
            self.started += 1
            try:
                result = await session.remember(f"kafka-fault-{self.started} outlives outages")
            except (LogUnavailable, StoreUnavailable) as exc:
                self.refused.append(type(exc).__name__)
                await asyncio.sleep(0.2)  # pacing retries, not waiting for a condition
                continue
            self.acknowledged.append(result.id)

    def stop(self) -> None:
        """Finish after the write in flight."""
        self._stop.set()

    async def acknowledges(self, more: int) -> None:
        """Wait until `more` writes beyond the current count are acknowledged."""
        target = len(self.acknowledged) + more

        async def done() -> bool:
            return len(self.acknowledged) >= target

        await eventually(done, f"{target} acknowledged writes (refused: {self.refused[-5:]})")


def count(getter: Callable[[], int], more: int) -> Callable[[], Awaitable[bool]]:
    """A condition: `getter()` has grown by `more` from its value now."""
    target = getter() + more

    async def done() -> bool:
        return getter() >= target

    return done


def restart(server: EmbeddedPostgres) -> None:
    """Start the killed server again, once its old processes are gone."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            server.ensure_running()
            return
        except NotRestartableYet:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def test_kafka_mode_survives_broker_and_postgres_outages(tmp_path: Path, home: Path) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, home)
    port = free_port()
    broker = await asyncio.to_thread(start_tansu, port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        with run_deployment(bootstrap, server.uri, tmp_path) as deployment:
            client = SpectronClient(
                kafka=bootstrap,
                database=deployment.database,
                run_projectors=False,
                settings=Settings(topic=deployment.topic, partitions=4),
                embedder=HashingEmbedder(),
                read_timeout=10.0,
            )
            try:
                writer = await outages(client, broker, server, home)
                service = await client.service()
                consumers = [enricher.name for enricher in service.enrichers()]
                await quiesce(service, consumers, BOUND)  # the workers caught up by themselves
                logs = deployment.log_tails()
            except BaseException:
                await client.close()
                raise
        try:  # the workers stopped: verify replays the log into a fresh projection
            result = await verify(service, writer.acknowledged, consumers, BOUND)
        finally:
            await client.close()
    finally:
        broker.send_signal(signal.SIGCONT)
        broker.terminate()
        await asyncio.to_thread(broker.wait, 10)
        await asyncio.to_thread(server.close)
    summary = f"{result}\nrefused: {writer.refused}\n{logs}"
    assert result["acknowledged"] >= 15, summary
    assert result["lost"] == 0, summary
    assert result["duplicated"] == 0, summary
    assert result["projected"] == result["acknowledged"], summary
    assert result["unembedded"] == 0, summary
    assert result["live_hash"] == result["rebuilt_hash"], summary


async def outages(
    client: SpectronClient, broker: subprocess.Popen[bytes], server: EmbeddedPostgres, home: Path
) -> Writer:
    """Write throughout a broker outage and then a Postgres one; the writer, stopped."""
    writer = Writer(client)
    writing = asyncio.create_task(writer.run())
    try:
        await writer.acknowledges(5)

        broker.send_signal(signal.SIGSTOP)  # the broker stops answering
        try:
            # a write begun after the stop has met the silent broker and given up
            await eventually(count(lambda: len(writer.refused), 1), "a write refused")
        finally:
            broker.send_signal(signal.SIGCONT)
        await writer.acknowledges(5)

        await kill_postmaster(home)
        await eventually(count(lambda: writer.refused.count("StoreUnavailable"), 1), "a 503")
        await asyncio.to_thread(restart, server)
        await writer.acknowledges(5)
    finally:
        writer.stop()
        await asyncio.wait_for(writing, BOUND)
    return writer
