"""A live projection batch ends after a few vectors, so memories behind them become visible soon."""

from __future__ import annotations

from collections.abc import Callable

from projectors.enrichment import embed_memories
from projectors.enrichment_input import enrichment_window
from projectors.live_batch import MAX_VECTORS
from projectors.tailer import project_once
from spectron import SpectronClient
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import MemoryRecorded, MemoryRecordedPayload, new_event_fields, partition_key
from spectron.log import partition_for
from spectron.log.postgres import PostgresEventLog
from spectron.positions import projection_positions

SCOPE = {"org": "acme", "agent": "a1"}


def _memories(count: int) -> list[MemoryRecorded]:
    return [
        MemoryRecorded(
            **new_event_fields(SCOPE, "agent:a1"),
            payload=MemoryRecordedPayload(content=f"note number {n} about the harbour"),
        )
        for n in range(count)
    ]


async def test_a_live_batch_commits_after_max_vectors(
    make_client: Callable[..., SpectronClient],
) -> None:
    writer = make_client(run_projectors=False, extractor="none")
    service = await writer.service()
    assert isinstance(service.log, PostgresEventLog)
    memories = _memories(MAX_VECTORS * 2 + 8)
    vectors = embed_memories(HashingEmbedder(), memories)
    await service.log.append([*memories, *vectors])  # one scope: one partition, in this order
    partition = partition_for(partition_key(memories[0]), service.log.partitions)

    await project_once(service.pool, service.log, service.context)
    async with service.pool.connection() as conn:
        position = (await projection_positions(conn))[partition]
        cur = await conn.execute("SELECT count(*), count(embedding) FROM memories")
        row = await cur.fetchone()
    # the first batch stops before the vector that would exceed the bound: every memory is
    # visible, only the first MAX_VECTORS vectors are in
    assert position == len(memories) + MAX_VECTORS
    assert row == (len(memories), MAX_VECTORS)

    while await project_once(service.pool, service.log, service.context):
        pass
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(embedding) FROM memories")
        assert await cur.fetchone() == (len(memories), len(memories))


async def test_the_enrichment_window_opens_only_memories(
    make_client: Callable[..., SpectronClient],
) -> None:
    writer = make_client(run_projectors=False, extractor="none")
    service = await writer.service()
    memories = _memories(5)
    vectors = embed_memories(HashingEmbedder(), memories[:2])
    # log order: m0 m1 v0 v1 m2 m3 m4
    await service.log.append([memories[0], memories[1], *vectors, *memories[2:]])
    partition = partition_for(partition_key(memories[0]), service.log.partitions)
    records = await service.log.read(partition, 0, 100)

    chosen, last = enrichment_window(records, batch_size=3)
    assert [r.position.offset for r in chosen] == [0, 1, 4]
    assert last == 4  # stops before m3: the pass moves past the vectors, not past m3
    chosen, last = enrichment_window(records[5:], batch_size=3)
    assert [r.position.offset for r in chosen] == [5, 6] and last == 6
    assert enrichment_window(records[2:4], batch_size=3) == ([], 3)
