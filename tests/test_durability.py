"""The embedded default survives a stop and a restart; projections rebuilt from the log hash the same."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Sequence

import psutil
import pytest

from spectron import SpectronClient
from spectron.embedding import Vectors
from spectron.embedding.hashing import HashingEmbedder
from spectron.maintenance import catch_up, rebuild, state_hash

SHARED = {"org": "acme", "project": "market-research-q3"}


class CountingEmbedder(HashingEmbedder):
    """Counts passage embeddings, to prove replay never re-embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.passages = 0

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        self.passages += len(texts)
        return super().embed_passages(texts)


def postmaster_pid(home) -> int | None:
    pidfile = home / "pgdata" / "postmaster.pid"
    if not pidfile.exists():
        return None
    return int(pidfile.read_text().split()[0])


async def test_memories_survive_stop_and_start(tmp_path) -> None:
    home = tmp_path / "home"
    client = SpectronClient(home=home, embedder=HashingEmbedder())
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("Competitor X launched a new pricing tier at $299/mo targeting SMBs.")
    pid = postmaster_pid(home)
    assert pid is not None and psutil.pid_exists(pid)
    await client.close()
    # the last handle closed: the embedded server is stopped, not left behind
    for _ in range(50):
        if not psutil.pid_exists(pid):
            break
        await asyncio.sleep(0.1)
    assert not psutil.pid_exists(pid)

    again = SpectronClient(home=home, embedder=HashingEmbedder())
    try:
        async with again.sessions.create(scope=SHARED) as s:
            ctx = await s.recall("competitor pricing", top_k=5)
        assert [item.content for item in ctx.items] == [
            "Competitor X launched a new pricing tier at $299/mo targeting SMBs."
        ]
    finally:
        await again.close()


async def test_rebuild_from_log_gives_same_hash_without_embedding(make_client) -> None:
    embedder = CountingEmbedder()
    client = make_client(embedder=embedder)
    for worker in range(5):
        async with client.sessions.create(scope={**SHARED, "agent": f"w{worker}"}) as s:
            for n in range(8):
                await s.remember(f"Worker {worker} finding {n}: price moved {n * 5}%.")
    service = await client.service()
    # one poison record from "another producer": replay must dead-letter it again, identically
    await service.log.append_raw(0, None, b"not json at all")  # type: ignore[attr-defined]
    assert await catch_up(service) == 0
    before = await state_hash(service)
    embedded = embedder.passages
    assert embedded == 40

    report = await rebuild(service)
    assert await catch_up(service) == 0
    assert await state_hash(service) == before
    assert embedder.passages == embedded, "replay must not call the embedder"
    assert report.events >= 81
    async with client.sessions.create(scope=SHARED) as s:
        assert len((await s.recall("price moved", top_k=50)).items) == 40


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from spectron import SpectronClient
    from spectron.embedding.hashing import HashingEmbedder

    async def main():
        client = SpectronClient(database=sys.argv[1], embedder=HashingEmbedder(),
                                run_projectors=False)
        async with client.sessions.create(scope={"org": "acme", "project": "p"}) as s:
            for n in range(int(sys.argv[2])):
                await s.remember(f"cross-process note {n} about zebra migrations")
        await client.close()
        print("written", flush=True)
        sys.stdin.readline()  # stay alive until the reader has checked

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("count", [1, 25])
async def test_read_your_writes_across_processes(make_client, database, count) -> None:
    reader = make_client()
    await reader.service()  # the reader's process runs the projectors; the writer's does not
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        database,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        line = await asyncio.wait_for(writer.stdout.readline(), 60)
        assert line.strip() == b"written"
        async with reader.sessions.create(scope={"org": "acme", "project": "p", "agent": "w"}) as s:
            ctx = await s.recall("zebra migrations", top_k=50)
        assert len(ctx.items) == count
        assert ctx.pending == 0 and all(item.embedded for item in ctx.items)
    finally:
        await asyncio.wait_for(writer.communicate(b"\n"), 30)


async def test_read_your_writes_within_one_client(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as a, client.sessions.create(scope=SHARED) as b:
        for n in range(20):
            await a.remember(f"note {n}: the kiwi shipment is late")
            ctx = await b.recall("kiwi shipment", top_k=50)
            assert len(ctx.items) == n + 1


async def test_eventual_consistency_skips_the_wait(make_client) -> None:
    client = make_client(run_projectors=False)
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("nobody projects this")
        ctx = await s.recall("projects", consistency="eventual")
        assert ctx.items == []


async def test_wait_is_bounded_with_a_clear_error(make_client) -> None:
    from spectron import ReadYourWritesTimeout

    client = make_client(run_projectors=False)
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("nobody projects this either")
        with pytest.raises(ReadYourWritesTimeout, match="behind the log"):
            await s.recall("projects", timeout=0.2)


async def test_unembedded_memories_are_found_by_keyword_at_the_bound(make_client) -> None:
    class Broken(HashingEmbedder):
        def embed_passages(self, texts: Sequence[str]) -> Vectors:
            raise RuntimeError("embedding service down")

    client = make_client(embedder=Broken())
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("The walrus budget was approved.")
        ctx = await s.recall("walrus budget", timeout=0.3)
    assert [item.content for item in ctx.items] == ["The walrus budget was approved."]
    assert ctx.pending == 1 and not ctx.items[0].embedded
    assert "not yet embedded" in ctx.formatted
