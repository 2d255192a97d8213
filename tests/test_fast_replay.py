"""Fast replay (deferred indexes, pipelined batches) builds exactly what live projection built."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest

from projectors.driver import PipelinedCursor
from projectors.vector_index import index_build_memory
from spectron.maintenance import blue_green_replay, rebuild, state_hash
from spectron.service import MemoryService
from tests.replay_support import SCOPE, fill_every_event_type


async def schema_indexes(service: MemoryService) -> list[str]:
    """Every index definition of the projection schema, schema name left out."""
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT replace(indexdef, schemaname || '.', '') FROM pg_indexes"
            " WHERE schemaname = current_schema() ORDER BY indexname"
        )
        return [row[0] for row in await cur.fetchall()]


async def test_fast_rebuild_and_blue_green_hash_like_live(make_client) -> None:
    client = make_client(extractor="none")
    await fill_every_event_type(client)
    service = await client.service()
    live = await state_hash(service)
    indexes = await schema_indexes(service)
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM memories WHERE embedding IS NOT NULL"
            " UNION ALL SELECT count(*) FROM attribute_values WHERE superseded_by_memory IS NOT NULL"
            " UNION ALL SELECT count(*) FROM dead_letters"
            " UNION ALL SELECT count(*) FROM reflections"
            " UNION ALL SELECT count(*) FROM enrichment_failures"
        )
        counts = [row[0] for row in await cur.fetchall()]
    assert counts[0] == 10 and counts[1] >= 3 and counts[2] == 2 and counts[3] == 1, counts
    assert counts[4] == 1

    phases: set[str] = set()
    outcome = await blue_green_replay(
        service, verify=True, progress=lambda phase, done, total: phases.add(phase)
    )
    assert outcome.switched and outcome.rebuilt_hash == live, outcome.differences
    assert phases == {"events", "indexes"}
    assert outcome.replay.apply_seconds > 0 and outcome.replay.index_seconds > 0

    report = await rebuild(service)
    assert await state_hash(service) == live
    assert report.events == outcome.replay.events
    # every deferred index is back, none is left recorded, and the planner has statistics
    assert await schema_indexes(service) == indexes
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM projection_meta WHERE key LIKE 'deferred_index:%'"
        )
        assert (await cur.fetchone())[0] == 0
        cur = await conn.execute(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'memories'"
        )
        assert (await cur.fetchone())[0]
    async with client.sessions.create(scope=SCOPE) as s:  # projectors resumed after the rebuild
        await s.remember("Written after the rebuild.")
        found = await s.recall("after the rebuild")
        assert found.items[0].content == "Written after the rebuild."


async def test_indexes_of_a_replay_that_died_are_built_at_next_start(make_client) -> None:
    from projectors.replay import defer_indexes

    client = make_client(extractor="none")
    async with client.sessions.create(scope=SCOPE) as s:
        await s.remember("Something to index.")
    service = await client.service()
    indexes = await schema_indexes(service)
    await service.begin_replay()  # a replay stops the projector loops first
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        dropped = await defer_indexes(conn)  # ...and the process dies before restore_indexes
    assert "memories_embedding" in dropped and "attribute_values_chain" not in dropped
    assert "entity_mentions_entity" not in dropped
    assert len(await schema_indexes(service)) < len(indexes)
    await client.close()
    again = make_client(extractor="none")
    assert await schema_indexes(await again.service()) == indexes


def test_cli_replay_verify_prints_rate_and_names_an_injected_difference(tmp_path) -> None:
    script = (
        "import asyncio\n"
        "from spectron import SpectronClient\n"
        "from spectron.maintenance import catch_up\n"
        "async def main():\n"
        f"    async with SpectronClient(home={str(tmp_path)!r}, embedder='hashing',"
        " extractor='none') as c:\n"
        "        async with c.sessions.create(scope={'org': 'a'}) as s:\n"
        "            for n in range(20):\n"
        "                await s.remember(f'memory number {n}')\n"
        "        service = await c.service()\n"
        "        assert await catch_up(service) == 0\n"
        "        if {!r}:\n"
        "            async with service.pool.connection() as conn:\n"
        "                await conn.execute(\"UPDATE memories SET content = 'tampered'"
        " WHERE content = 'memory number 7'\")\n"
        "asyncio.run(main())\n"
    )
    cli = [sys.executable, "-m", "spectron.cli", "replay", "--verify", "--home", str(tmp_path)]
    subprocess.run([sys.executable, "-c", script.replace("{!r}", "False")], check=True, timeout=120)
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    said = " ".join(ok.stdout.split())
    assert "events/s" in said and "switched to the rebuilt projections" in said
    subprocess.run([sys.executable, "-c", script.replace("{!r}", "True")], check=True, timeout=120)
    failed = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    said = " ".join(failed.stdout.split())  # the terminal width wraps long rows
    assert "nothing was switched" in said
    assert "memories (live only)" in said and "tampered" in said
    assert "memories (rebuilt only)" in said and "memory number 7" in said


async def test_pipelined_cursor_refuses_a_rowcount_not_yet_known(database) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.pipeline(), conn.transaction(), PipelinedCursor[Any](conn) as cur:
            await cur.execute("CREATE TEMP TABLE t (x int)")
            await cur.execute("INSERT INTO t VALUES (1), (2) RETURNING x")
            with pytest.raises(RuntimeError, match="RETURNING"):
                _ = cur.rowcount
            assert len(await cur.fetchall()) == 2 and cur.rowcount == 2


def test_the_hnsw_graph_of_a_large_store_is_built_in_memory_within_half_the_host() -> None:
    # measured: 100 MB of maintenance_work_mem held the graph of 69,415 384-d halfvecs, and a
    # build that spilled past it took twice as long; 1 GB stays the least (small stores)
    measured_need = 100 * 2**20 * 1_000_000 // 69_415
    assert index_build_memory(20_000, 384, 16 * 2**30) == 2**30
    assert measured_need < index_build_memory(1_000_000, 384, 16 * 2**30) <= 8 * 2**30
    assert index_build_memory(10_000_000, 384, 16 * 2**30) == 8 * 2**30  # half the host
    assert index_build_memory(10_000_000, 384, 1 * 2**30) == 2**30
    assert index_build_memory(10_000_000, 384, None) > 10 * 2**30


async def test_a_replay_cut_short_leaves_no_copy_behind(make_client) -> None:
    client = make_client(extractor="none")
    await fill_every_event_type(client)
    service = await client.service()
    live = await state_hash(service)

    class Interrupted(Exception):
        pass

    def interrupt(phase: str, done: int, total: int) -> None:
        raise Interrupted  # as Ctrl-C would, mid-replay

    with pytest.raises(Interrupted):
        await blue_green_replay(service, verify=True, progress=interrupt)
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)",
            [f"{service.settings.projection_schema}_build_"],
        )
        assert await cur.fetchall() == []
    assert await state_hash(service) == live
