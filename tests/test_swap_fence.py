"""A blue/green swap fences the live projection: no batch of another process straddles it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from psycopg import AsyncConnection, sql

from projectors.driver import ProjectionGap, apply_records
from projectors.replay import swap_schemas
from projectors.tailer import project_once
from spectron.db import PROJECTION_MIGRATIONS, create_extensions
from spectron.migrations import migrate
from spectron.positions import (
    advance_projection,
    lock_projection_position,
    projection_positions,
)

LIVE, REBUILT = "spectron", "spectron_build_1"
BOUND = 60.0


async def _connect(database: str) -> AsyncConnection[Any]:
    """A projector's connection: the live schema by name, on the search path."""
    conn = await AsyncConnection.connect(database, autocommit=True)
    await conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(LIVE)))
    return conn


async def _waits_on_a_lock(watcher: AsyncConnection[Any], waiter: AsyncConnection[Any]) -> None:
    """Return once `waiter`'s backend waits for a lock (as a swap or a batch held back does)."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while asyncio.get_running_loop().time() < deadline:
        cur = await watcher.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
            [waiter.info.backend_pid],
        )
        if (await cur.fetchone() or (None,))[0] == "Lock":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("it never waited for a lock")


async def test_a_swap_waits_for_batches_under_way_and_later_ones_land_in_the_new_schema(
    database: str,
) -> None:
    async with await AsyncConnection.connect(database, autocommit=True) as setup:
        await create_extensions(setup, LIVE)
        for schema in (LIVE, REBUILT):
            await migrate(setup, schema, PROJECTION_MIGRATIONS, {"embedding_dim": 8})
    under_way, later = await _connect(database), await _connect(database)
    swapper, watcher = await _connect(database), await _connect(database)
    try:
        for _ in range(6):  # past psycopg's prepare threshold: the later batch's plans are cached
            async with later.transaction(force_rollback=True):
                await lock_projection_position(later, 1, wait=True)
                await advance_projection(later, 1, 5)
        async with under_way.transaction():  # a batch of another process, in the live schema
            assert await lock_projection_position(under_way, 0, wait=True) == 0
            swap = asyncio.create_task(swap_schemas(swapper, LIVE, REBUILT))
            await _waits_on_a_lock(watcher, swapper)  # the swap waits for the batch to end

            async def batch_begun_meanwhile() -> None:
                async with later.transaction():
                    assert await lock_projection_position(later, 1, wait=True) == 0
                    await advance_projection(later, 1, 5)

            begun = asyncio.create_task(batch_begun_meanwhile())
            await _waits_on_a_lock(watcher, later)  # held back behind the swap
            await advance_projection(under_way, 0, 7)
        await asyncio.wait_for(swap, BOUND)
        await asyncio.wait_for(begun, BOUND)
        # the batch under way ended in the old schema (retired and dropped, so applied again
        # from the new one's position); the later one wholly in the new schema
        cur = await watcher.execute(
            sql.SQL("SELECT partition, next_offset FROM {}.positions").format(sql.Identifier(LIVE))
        )
        assert await cur.fetchall() == [(1, 5)]
        cur = await watcher.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", [REBUILT]
        )
        assert await cur.fetchone() == (0,)
    finally:
        for conn in (under_way, later, swapper, watcher):
            await conn.close()


async def test_a_batch_read_past_a_position_that_moved_back_applies_nothing(make_client) -> None:
    """A driver reads its batch from the position it saw; a replay's switch may have put an
    older position in place since. Applying from there would skip the records between."""
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with client.sessions.create(scope={"org": "gap"}) as s:
        for n in range(4):
            await s.remember(f"note {n} before the switch")
    while await project_once(service.pool, service.log, service.context):
        pass
    async with service.pool.connection() as conn:
        [(partition, end)] = [(p, n) for p, n in (await projection_positions(conn)).items() if n]
        seen = await service.log.read(partition, 0, end)
        # as a switch to a projection rebuilt up to offset 1 leaves it
        await conn.execute("UPDATE positions SET next_offset = 1 WHERE partition = %s", [partition])
        await conn.commit()
    with pytest.raises(ProjectionGap):
        async with service.pool.connection() as conn:
            await apply_records(conn, partition, seen[2:], service.context, wait=True)
    async with service.pool.connection() as conn:
        assert (await projection_positions(conn))[partition] == 1  # nothing applied
    while await project_once(service.pool, service.log, service.context):
        pass  # the tailer reads from the stored position again
    async with service.pool.connection() as conn:
        assert (await projection_positions(conn))[partition] == end
