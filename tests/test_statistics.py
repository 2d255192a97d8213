"""After projecting many rows the tailer refreshes the planner's statistics itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from benchmarks.bulkload import memory_batch
from benchmarks.workload import ScopeTree, TextGenerator
from projectors.statistics import CHECK_EVERY, analyze
from spectron import SpectronClient
from spectron.maintenance import catch_up

BOUND = 120.0  # seconds: generous for a busy CI machine


async def _analyzed(client: SpectronClient) -> tuple[object, float]:
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.last_analyze, c.reltuples FROM pg_stat_user_tables s"
            " JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relname = 'memories' AND s.schemaname = current_schema()"
        )
        row = await cur.fetchone()
    assert row is not None
    return row[0], float(row[1])


async def test_a_large_projected_batch_is_analyzed(
    make_client: Callable[..., SpectronClient],
) -> None:
    count = CHECK_EVERY * 2
    writer = make_client(run_projectors=False, extractor="none")
    service = await writer.service()
    tree, text = ScopeTree(2, 2), TextGenerator()
    await service.log.append(memory_batch(tree, text, range(count)))
    assert (await _analyzed(writer))[0] is None

    live = make_client(extractor="none")
    await catch_up(await live.service(), BOUND)
    deadline = time.monotonic() + BOUND
    while True:
        analyzed_at, planner_rows = await _analyzed(live)
        if analyzed_at is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    # ANALYZE by the system (autovacuum would set last_autoanalyze instead)
    assert analyzed_at is not None
    assert planner_rows >= count * 0.9


async def test_a_table_being_indexed_is_skipped_not_waited_for(
    make_client: Callable[..., SpectronClient],
) -> None:
    """Queued behind a concurrent index build, an ANALYZE deadlocks the build's last phase."""
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with service.pool.connection() as builder, builder.transaction():
        # the lock CREATE INDEX CONCURRENTLY holds for its whole build
        await builder.execute("LOCK TABLE memories IN SHARE UPDATE EXCLUSIVE MODE")
        await asyncio.wait_for(analyze(service.pool, ["memories"]), BOUND)  # returns, skipped
    assert (await _analyzed(client))[0] is None
    await analyze(service.pool, ["memories"])
    assert (await _analyzed(client))[0] is not None
