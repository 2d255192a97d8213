"""Read your writes (DESIGN rule 3): a strong read waits for the writes it is owed, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from projectors.driver import apply_records
from projectors.enrichment import EmbeddingEnricher
from projectors.tailer import PROJECTION_FIRST, enrich_once
from spectron import SpectronClient
from spectron.consistency import HOPELESS_BACKLOG, owed_heads, wait_for_projections
from spectron.errors import ReadYourWritesTimeout
from spectron.log import partition_for
from spectron.positions import projection_positions
from spectron.scope import scope_key
from spectron.service import MemoryService

BOUND = 60.0  # generous: a read that is owed nothing more returns long before


async def _project_through(service: MemoryService, partition: int, offset: int) -> None:
    """Apply a partition's records up to and including `offset`, and nothing after it."""
    async with service.pool.connection() as conn:
        start = (await projection_positions(conn)).get(partition, 0)
    records = await service.log.read(partition, start, offset + 1 - start)
    async with service.pool.connection() as conn:
        await apply_records(conn, partition, records, service.context, wait=True)


def _scope_elsewhere(partitions: int, avoid: int, **dims: str) -> dict[str, str]:
    """A scope like `dims` (plus a counter) whose events land in another partition than `avoid`."""
    for n in range(1000):
        scope = {**dims, "n": str(n)}
        if partition_for(scope_key(scope).encode(), partitions) != avoid:
            return scope
    raise AssertionError("no scope found outside the partition")


async def test_a_strong_recall_does_not_wait_for_derived_events_behind_its_write(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    async with client.sessions.create(scope={"org": "acme", "agent": "a"}) as session:
        written = await session.remember("the blue heron nests by the river")
        # enrichment embeds it: the MemoryEmbedded event lands behind the write in its partition
        assert await enrich_once(service.pool, service.log, EmbeddingEnricher(service.embedder))
        assert (await service.log.end_offsets())[written.partition] > written.offset + 1
        await _project_through(service, written.partition, written.offset)

        result = await session.recall("blue heron", timeout=BOUND)

    assert [item.id for item in result.items] == [written.id]
    assert result.pending == 1  # its vector is not projected yet: found by keyword, and said so


async def test_a_strong_recall_does_not_wait_for_scopes_it_cannot_see(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    mine = {"org": "acme", "agent": "a"}
    async with client.sessions.create(scope=mine) as session:
        written = await session.remember("the blue heron nests by the river")
        await _project_through(service, written.partition, written.offset)
        sibling = _scope_elsewhere(service.log.partitions, written.partition, org="acme", agent="b")
        other_org = _scope_elsewhere(service.log.partitions, written.partition, org="globex")
        for scope in (sibling, other_org):
            async with client.sessions.create(scope=scope) as elsewhere:
                await elsewhere.remember("a grey heron in another scope")
        # a later write of its own scope, in its partition, is not owed to a read begun before it
        result = await session.recall("heron", timeout=BOUND)

    assert [item.id for item in result.items] == [written.id]


async def test_a_strong_recall_waits_for_parent_and_sub_scope_writes(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    reader_scope = {"org": "acme", "team": "t"}
    seen: list[str] = []
    for scope, text in (
        ({"org": "acme"}, "heron policy for the whole org"),
        ({"org": "acme", "team": "t", "agent": "b"}, "heron sighting by agent b"),
        ({"org": "acme", "team": "u"}, "heron note of another team"),
    ):
        async with client.sessions.create(scope=scope) as writer:
            written = await writer.remember(text)
            if "another team" not in text:
                seen.append(str(written.id))
    async with client.sessions.create(scope=reader_scope) as reader:
        recall = asyncio.create_task(reader.recall("heron", top_k=10, timeout=BOUND))
        await asyncio.sleep(0)  # the read has begun: the writes above are owed to it
        service.start_projectors()
        result = await recall

    assert sorted(str(item.id) for item in result.items) == sorted(seen)


async def test_a_token_makes_a_read_wait_for_a_write_its_scope_cannot_see(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    async with client.sessions.create(scope={"org": "acme", "agent": "a"}) as writer:
        written = await writer.remember("a write made through another server")
    elsewhere = {"org": "globex"}
    # the scope cannot see the write: nothing is owed, the read does not wait
    result = await service.recall(elsewhere, "write", timeout=BOUND)
    assert result.items == []
    # a token naming the write makes it wait (projection is stopped, so it cannot catch up)
    token = f"{written.partition}:{written.offset}"
    with pytest.raises(ReadYourWritesTimeout):
        await service.recall(elsewhere, "write", timeout=0.2, after=token)
    # a token beyond the log's end (another log's) is capped at the end, and a malformed one refused
    await _project_through(service, written.partition, written.offset)
    far = f"{written.partition}:{written.offset + 10_000}"
    assert (await service.recall(elsewhere, "write", timeout=BOUND, after=far)).items == []
    from spectron.errors import InvalidInput

    with pytest.raises(InvalidInput):
        await service.recall(elsewhere, "write", after="3:x")


async def test_enrichment_leaves_a_partition_to_the_projector_while_it_trails(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    embedding = EmbeddingEnricher(service.embedder)
    async with client.sessions.create(scope={"org": "acme", "agent": "busy"}) as session:
        for n in range(PROJECTION_FIRST + 1):
            written = await session.remember(f"note {n} on the heron count")
    # the projector trails the partition by more than PROJECTION_FIRST writes: enrichment waits,
    # so its vectors do not queue up in front of the writes readers are owed
    assert await enrich_once(service.pool, service.log, embedding) == 0
    await _project_through(service, written.partition, written.offset)
    assert await enrich_once(service.pool, service.log, embedding) > 0


async def test_a_strong_recall_does_not_hold_out_for_enrichment_that_cannot_arrive(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    async with client.sessions.create(scope={"org": "acme", "agent": "flood"}) as session:
        for n in range(HOPELESS_BACKLOG + 1):
            written = await session.remember(f"flood note {n} about egrets")
        await _project_through(service, written.partition, written.offset)
        # projected, none embedded, and the embedding pass trails by more than it could catch up
        result = await session.recall("egrets", top_k=3, timeout=BOUND)

    assert result.pending == HOPELESS_BACKLOG + 1 and len(result.items) == 3
    assert (
        result.waited_ms < BOUND * 1000 / 2
    )  # answered with the keyword fallback, not at the bound


async def test_a_reader_owed_a_write_projects_its_partition_itself(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    scope = {"org": "acme", "agent": "a"}
    async with client.sessions.create(scope=scope) as session:
        written = await session.remember("the blue heron nests by the river")
    owed = await owed_heads(service.pool, service.log, scope)
    assert owed == {written.partition: written.offset + 1}
    # no projector runs: the reader applies the batch it is owed, through the same driver
    await wait_for_projections(
        service.pool, owed, scope, BOUND, None, project=service._help_project
    )
    async with service.pool.connection() as conn:
        assert (await projection_positions(conn))[written.partition] == written.offset + 1
