"""After projecting many rows the tailer refreshes the planner's statistics itself."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
from psycopg_pool import AsyncConnectionPool

from benchmarks.bulkload import memory_batch
from benchmarks.workload import ScopeTree, TextGenerator
from projectors import statistics
from projectors.statistics import CHECK_EVERY, analyze
from spectron import SpectronClient
from spectron.maintenance import catch_up

BOUND = 120.0  # seconds: generous for a busy CI machine
# the lock CREATE INDEX CONCURRENTLY, VACUUM and autovacuum hold: ANALYZE cannot run beside it
BUSY = "LOCK TABLE memories IN SHARE UPDATE EXCLUSIVE MODE"


async def _analyzed(client: SpectronClient, table: str = "memories") -> tuple[object, float]:
    """When `table` was last analyzed by hand (None: never), and its rows as the planner sees."""
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.last_analyze, c.reltuples FROM pg_stat_user_tables s"
            " JOIN pg_class c ON c.oid = s.relid"
            " WHERE s.relname = %s AND s.schemaname = current_schema()",
            [table],
        )
        row = await cur.fetchone()
    assert row is not None
    return row[0], float(row[1])


async def _written_unprojected(
    make_client: Callable[..., SpectronClient], count: int
) -> SpectronClient:
    """`count` memories in the log, none projected; autovacuum kept off the table."""
    writer = make_client(run_projectors=False, extractor="none")
    service = await writer.service()
    async with service.pool.connection() as conn:
        # only the tailer may analyze here (autovacuum would set last_autoanalyze, and its
        # timing is the cluster's)
        await conn.execute("ALTER TABLE memories SET (autovacuum_enabled = false)")
    tree, text = ScopeTree(2, 2), TextGenerator()
    await service.log.append(memory_batch(tree, text, range(count)))
    assert (await _analyzed(writer))[0] is None
    return writer


async def _wait_analyzed(client: SpectronClient) -> tuple[object, float]:
    deadline = time.monotonic() + BOUND
    while True:
        analyzed_at, planner_rows = await _analyzed(client)
        if analyzed_at is not None or time.monotonic() > deadline:
            return analyzed_at, planner_rows
        await asyncio.sleep(0.2)


async def test_a_large_projected_batch_is_analyzed(
    make_client: Callable[..., SpectronClient],
) -> None:
    count = CHECK_EVERY * 2
    await _written_unprojected(make_client, count)
    live = make_client(extractor="none")
    await catch_up(await live.service(), BOUND)
    analyzed_at, planner_rows = await _wait_analyzed(live)
    assert analyzed_at is not None
    assert planner_rows >= count * 0.9


async def test_a_table_busy_when_due_is_analyzed_once_free(
    make_client: Callable[..., SpectronClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Skipped while something else held the table, the ANALYZE is tried again after."""
    caplog.set_level(logging.INFO, logger="projectors.statistics")
    writer = await _written_unprojected(make_client, CHECK_EVERY * 2)
    service = await writer.service()
    async with service.pool.connection() as holder:
        async with holder.transaction():
            await holder.execute(BUSY)
            live = make_client(extractor="none")
            await catch_up(await live.service(), BOUND)
            deadline = time.monotonic() + BOUND
            while time.monotonic() < deadline:  # the tailer tried, and found the table held
                if "memories busy" in caplog.text:
                    break
                await asyncio.sleep(0.2)
            assert "memories busy" in caplog.text
            assert (await _analyzed(writer))[0] is None
        analyzed_at, _ = await _wait_analyzed(live)
    assert analyzed_at is not None


async def test_a_table_being_indexed_is_skipped_not_waited_for(
    make_client: Callable[..., SpectronClient],
) -> None:
    """Queued behind a concurrent index build, an ANALYZE deadlocks the build's last phase."""
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with service.pool.connection() as builder, builder.transaction():
        await builder.execute(BUSY)  # as CREATE INDEX CONCURRENTLY holds it for its whole build
        skipped = await asyncio.wait_for(analyze(service.pool, ["memories"]), BOUND)
    assert skipped == ["memories"]
    assert (await _analyzed(client))[0] is None
    assert await analyze(service.pool, ["memories"]) == []
    assert (await _analyzed(client))[0] is not None


async def test_a_table_busy_beside_one_analyzed_is_still_tried_again(
    make_client: Callable[..., SpectronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    monkeypatch.setattr(statistics, "RETRY_AFTER", 0.0)

    async def both_due(pool: object, applied: int = 0) -> list[str]:
        return ["memories", "entities"]

    monkeypatch.setattr(statistics, "due_tables", both_due)
    keeper = statistics.StatisticsKeeper(service.pool)
    keeper.note(CHECK_EVERY)
    async with service.pool.connection() as holder:
        async with holder.transaction():
            await holder.execute("LOCK TABLE entities IN SHARE UPDATE EXCLUSIVE MODE")
            keeper.caught_up()
            assert keeper._task is not None
            await keeper._task
        assert (await _analyzed(client, "memories"))[0] is not None
        assert (await _analyzed(client, "entities"))[0] is None
    assert keeper.applied == 0  # memories was analyzed: its count starts again
    keeper.caught_up()  # entities, busy last time, is tried again
    await keeper._task
    assert (await _analyzed(client, "entities"))[0] is not None


async def test_a_refresh_that_fails_waits_for_more_records(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    broken = AsyncConnectionPool(service.runtime.uri, open=False)  # never opened: every use fails
    keeper = statistics.StatisticsKeeper(broken)
    keeper.note(CHECK_EVERY)
    keeper.caught_up()
    first = keeper._task
    assert first is not None
    await first
    keeper.caught_up()
    assert keeper._task is first, "no second attempt before another CHECK_EVERY records"
    keeper.note(CHECK_EVERY)
    keeper.caught_up()
    assert keeper._task is not first
    await keeper.close()
