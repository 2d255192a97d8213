"""Before a large backlog of vectors the HNSW graph is dropped, and built again once it settles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import projectors.vector_index as vector_index
from projectors.enrichment import embed_memories
from projectors.tailer import project_once
from projectors.vector_index import INDEX, Backlog, VectorIndexKeeper, deferred, drop_graph
from spectron import SpectronClient
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import MemoryRecorded, MemoryRecordedPayload, new_event_fields
from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.service import MemoryService

SCOPES = [{"org": "acme", "agent": f"a{n}"} for n in range(4)]  # more than one partition
BOUND = 120.0


def test_dropping_pays_only_for_a_backlog_large_against_the_graph() -> None:
    small, piling = vector_index.BULK_MIN - 1, vector_index.STAGED_MIN
    assert not Backlog(indexed=0, unembedded=small, unprojected=0, staged=piling).worth_dropping()
    assert Backlog(indexed=0, unembedded=small, unprojected=1, staged=piling).worth_dropping()
    big = vector_index.BULK_MIN * 10
    assert Backlog(
        indexed=big * vector_index.REBUILD_RATIO - 1, unembedded=big, unprojected=0, staged=piling
    ).worth_dropping()
    assert not Backlog(
        indexed=big * vector_index.REBUILD_RATIO, unembedded=big, unprojected=0, staged=piling
    ).worth_dropping()
    # memories waiting for a model slower than the graph's inserts: nothing piles up, no drop
    assert not Backlog(
        indexed=0, unembedded=big, unprojected=big, staged=piling - 1
    ).worth_dropping()
    assert Backlog(indexed=10**6, unembedded=vector_index.SETTLED, unprojected=0).settled()
    assert not Backlog(indexed=0, unembedded=vector_index.SETTLED, unprojected=1).settled()


def _memories(count: int) -> list[MemoryRecorded]:
    return [
        MemoryRecorded(
            **new_event_fields(SCOPES[n % len(SCOPES)], "agent:bulk"),
            payload=MemoryRecordedPayload(content=f"harbour note {n}: crane {n % 7} unloads"),
        )
        for n in range(count)
    ]


async def _index_state(service: MemoryService) -> tuple[bool | None, bool]:
    """(whether the HNSW index is valid, None when absent; whether it is recorded as away)."""
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT x.indisvalid FROM pg_index x WHERE x.indexrelid = to_regclass(%s)", [INDEX]
        )
        row = await cur.fetchone()
        return (None if row is None else bool(row[0])), await deferred(conn)


async def test_a_backlog_is_applied_without_the_graph_which_is_built_after(
    make_client: Callable[..., SpectronClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(vector_index, "BULK_MIN", 100)
    monkeypatch.setattr(vector_index, "STAGED_MIN", 0)  # how fast vectors come: the next test
    monkeypatch.setattr(vector_index, "SETTLED", 10)
    monkeypatch.setattr(vector_index, "MOVE_BATCH_AWAY", 50)
    monkeypatch.setattr(vector_index, "CHECK_EVERY", 0.2)
    writer = make_client(run_projectors=False, extractor="none")
    # a backlog of memories: the live client's embedding pass turns it into a backlog of vectors
    await (await writer.service()).log.append(_memories(400))
    await writer.close()

    caplog.set_level(logging.INFO, logger="projectors.vector_index")
    client = make_client(extractor="none")
    service = await client.service()
    assert await catch_up(service, bound=BOUND) == 0
    assert "dropped the vector index for a backlog" in caplog.text
    assert "built the vector index" in caplog.text
    assert await _index_state(service) == (True, False)

    async with client.sessions.create(scope=SCOPES[1]) as s:
        found = await s.recall("harbour note 5: crane 5 unloads", mode="dense")
        assert found.items[0].content == "harbour note 5: crane 5 unloads"
        assert found.items[0].embedded
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(embedding) FROM memories")
        assert await cur.fetchone() == (400, 400)
        # the planner's statistics know the vectors are there (analyzed after the build)
        cur = await conn.execute(
            "SELECT null_frac FROM pg_stats WHERE schemaname = current_schema()"
            " AND tablename = 'memories' AND attname = 'embedding'"
        )
        assert (await cur.fetchone() or (1.0,))[0] < 0.5

    before = await state_hash(service)
    await rebuild(service)  # the log says the same with the graph kept row by row or built after
    assert await state_hash(service) == before


async def test_a_graph_left_away_by_a_dead_process_is_built_by_the_next(
    make_client: Callable[..., SpectronClient],
) -> None:
    first = make_client(run_projectors=False, extractor="none")
    async with first.sessions.create(scope=SCOPES[0]) as s:
        await s.remember("The crane is serviced on Fridays.")
    service = await first.service()
    async with service.pool.connection() as conn:
        assert await drop_graph(conn)  # ...and the process dies before building it again
    assert await _index_state(service) == (None, True)
    await first.close()

    again = make_client(extractor="none")
    service = await again.service()
    assert await catch_up(service, bound=BOUND) == 0
    assert await _index_state(service) == (True, False)
    async with again.sessions.create(scope=SCOPES[0]) as s:
        found = await s.recall("crane serviced", mode="dense")
        assert [item.content for item in found.items] == ["The crane is serviced on Fridays."]


async def test_a_graph_built_before_its_record_was_removed_is_kept(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with service.pool.connection() as conn:
        assert await drop_graph(conn)
        assert not await drop_graph(conn)  # away already: nothing to drop
        cur = await conn.execute(
            "SELECT value FROM projection_meta WHERE key = %s", [vector_index.DEFERRED_KEY]
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute(row[0])  # the build finished, the process died before the delete
        await conn.commit()
        schema = await vector_index.current_schema(conn)
        built = await _index_oid(conn)
    conninfo = service.pool.conninfo
    assert isinstance(conninfo, str)
    assert await vector_index.build_graph(conninfo, schema)
    assert await _index_state(service) == (True, False)
    async with service.pool.connection() as conn:
        assert await _index_oid(conn) == built  # kept, not built again


async def _index_oid(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT to_regclass(%s)::oid", [INDEX])
    row = await cur.fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


async def test_the_graph_stays_for_memories_waiting_on_a_slow_model_and_goes_when_vectors_pile_up(
    make_client: Callable[..., SpectronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vector_index, "BULK_MIN", 100)
    monkeypatch.setattr(vector_index, "STAGED_MIN", 100)
    client = make_client(run_projectors=False, extractor="none")  # no movers: staged rows stay
    service = await client.service()
    memories = _memories(400)
    await service.log.append(memories)
    while await project_once(service.pool, service.log, service.context):
        pass
    keeper = VectorIndexKeeper(service.pool, service.log)
    await keeper.look()  # 400 memories await their vectors, none has come: keep inserting
    assert await _index_state(service) == (True, False) and not keeper.away

    await service.log.append(embed_memories(HashingEmbedder(), memories))
    while await project_once(service.pool, service.log, service.context):
        pass
    await keeper.look()  # 400 vectors staged at once: faster than the graph takes them
    assert await _index_state(service) == (None, True) and keeper.away


async def test_dropping_the_graph_behind_a_long_reader_gives_up_instead_of_queueing(
    make_client: Callable[..., SpectronClient],
) -> None:
    """A queued DROP would hold every recall and batch behind it for as long as the reader runs."""
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with service.pool.connection() as reader, service.pool.connection() as conn:
        async with reader.transaction():
            await reader.execute("SELECT count(*) FROM memories")  # and it goes on reading
            with pytest.raises(psycopg.errors.LockNotAvailable):
                await asyncio.wait_for(drop_graph(conn), BOUND)  # not: queued behind the reader
        assert await _index_state(service) == (True, False)  # kept, and nothing recorded
        assert await drop_graph(conn)  # the next look, the reader gone
    assert await _index_state(service) == (None, True)
