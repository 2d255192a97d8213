"""Vectors are staged by the projection and moved onto their memories after, by the movers."""

from __future__ import annotations

from collections.abc import Callable

from projectors.enrichment import embed_memories
from projectors.enrichment_input import enrichment_window
from projectors.tailer import project_once
from projectors.vector_index import move_staged
from spectron import SpectronClient
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import (
    MemoryEmbedded,
    MemoryRecorded,
    MemoryRecordedPayload,
    new_event_fields,
    partition_key,
)
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


async def test_memories_are_projected_without_waiting_for_the_graph(
    make_client: Callable[..., SpectronClient],
) -> None:
    writer = make_client(run_projectors=False, extractor="none")
    service = await writer.service()
    assert isinstance(service.log, PostgresEventLog)
    memories = _memories(40)
    vectors = embed_memories(HashingEmbedder(), memories)
    # one scope: one partition; a second vector for a memory must not replace the first
    again = MemoryEmbedded(
        **new_event_fields(SCOPE, "system:enricher"),
        payload=vectors[1].payload.model_copy(update={"memory_id": memories[0].event_id}),
    )
    await service.log.append([*memories, *vectors, again])
    partition = partition_for(partition_key(memories[0]), service.log.partitions)

    while await project_once(service.pool, service.log, service.context):
        pass
    async with service.pool.connection() as conn:
        position = (await projection_positions(conn))[partition]
        cur = await conn.execute("SELECT count(*), count(embedding) FROM memories")
        row = await cur.fetchone()
        cur = await conn.execute("SELECT count(*) FROM staged_vectors")
        staged = await cur.fetchone()
    # the whole log is projected and every memory is in; the vectors wait for the movers
    assert position == len(memories) * 2 + 1
    assert row == (len(memories), 0) and staged == (len(memories),)

    async with service.pool.connection() as conn:
        while await move_staged(conn, 16):
            await conn.commit()
        cur = await conn.execute("SELECT count(*), count(embedding) FROM memories")
        assert await cur.fetchone() == (len(memories), len(memories))
        cur = await conn.execute("SELECT count(*) FROM staged_vectors")
        assert await cur.fetchone() == (0,)
        cur = await conn.execute(
            "SELECT embedding = %s::halfvec FROM memories WHERE memory_id = %s",
            [vectors[0].payload.values(), memories[0].event_id],
        )
        assert await cur.fetchone() == (True,)  # the first logged vector won


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
