"""Vectors are staged by the projection and moved onto their memories after, by the movers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection, sql

from projectors.enrichment import embed_memories
from projectors.enrichment_input import enrichment_window
from projectors.forgetting import purge_memories
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
from spectron.service import MemoryService

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

    # a vector logged after the first was moved is staged anew (nothing to conflict with now)
    late = MemoryEmbedded(
        **new_event_fields(SCOPE, "system:enricher"),
        payload=vectors[2].payload.model_copy(update={"memory_id": memories[0].event_id}),
    )
    await service.log.append([late])
    while await project_once(service.pool, service.log, service.context):
        pass
    async with service.pool.connection() as conn:
        while await move_staged(conn, 16):
            await conn.commit()
        cur = await conn.execute(
            "SELECT embedding = %s::halfvec FROM memories WHERE memory_id = %s",
            [vectors[0].payload.values(), memories[0].event_id],
        )
        assert await cur.fetchone() == (True,)  # ...and moving it does not replace the first
        cur = await conn.execute("SELECT count(*) FROM staged_vectors")
        assert await cur.fetchone() == (0,)


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


async def _staged(
    make_client: Callable[..., SpectronClient], count: int
) -> tuple[MemoryService, list[MemoryRecorded]]:
    """`count` memories projected with their vectors staged; no movers run (projectors off)."""
    service = await make_client(run_projectors=False, extractor="none").service()
    memories = _memories(count)
    await service.log.append([*memories, *embed_memories(HashingEmbedder(), memories)])
    while await project_once(service.pool, service.log, service.context):
        pass
    return service, memories


async def test_forgetting_a_memory_a_mover_holds_waits_for_it_and_does_not_deadlock(
    make_client: Callable[..., SpectronClient], database: str
) -> None:
    service, memories = await _staged(make_client, 1)
    memory_id = memories[0].event_id
    schema = sql.Identifier(service.settings.projection_schema)
    async with (
        await AsyncConnection.connect(database) as mover,
        await AsyncConnection.connect(database) as purger,
    ):
        for conn in (mover, purger):
            await conn.execute(sql.SQL("SET search_path TO {}, public").format(schema))
            await conn.commit()
        # a mover's first step: its batch of staged rows, locked
        await mover.execute("SELECT 1 FROM staged_vectors FOR UPDATE")
        purge = asyncio.create_task(purge_memories(purger.cursor(), [memory_id]))
        await _until_blocked(mover, purger)
        # its second step: the memories; with the purge holding the memory this deadlocked
        await mover.execute(
            "UPDATE memories m SET embedding = s.embedding FROM staged_vectors s"
            " WHERE m.memory_id = s.memory_id"
        )
        await mover.execute("DELETE FROM staged_vectors")
        await mover.commit()
        assert await asyncio.wait_for(purge, 60) == 1
        await purger.commit()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM memories), (SELECT count(*) FROM staged_vectors)"
        )
        assert await cur.fetchone() == (0, 0)


async def _until_blocked(holder: AsyncConnection[Any], waiter: AsyncConnection[Any]) -> None:
    """Wait (bounded) until `waiter`'s backend is blocked by `holder`'s."""
    for _ in range(600):
        cur = await holder.execute(
            "SELECT %s = ANY(pg_blocking_pids(%s))",
            [holder.info.backend_pid, waiter.info.backend_pid],
        )
        row = await cur.fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the purge never waited for the mover")


async def test_a_mover_finding_every_staged_vector_held_takes_none(
    make_client: Callable[..., SpectronClient], database: str
) -> None:
    service, _ = await _staged(make_client, 3)
    schema = sql.Identifier(service.settings.projection_schema)
    async with await AsyncConnection.connect(database) as other:
        await other.execute(sql.SQL("SET search_path TO {}, public").format(schema))
        await other.execute("SELECT 1 FROM staged_vectors FOR UPDATE")  # another mover's batch
        async with service.pool.connection() as conn:
            # 0, not "something is staged": the mover waits instead of spinning on them
            assert await move_staged(conn, 16) == 0
        await other.rollback()
    async with service.pool.connection() as conn:
        assert await move_staged(conn, 16) == 3
