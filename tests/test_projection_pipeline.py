"""Projection batches under pipeline mode: a fetch reads its own statement's result, whatever the timing."""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from projectors.driver import PipelinedCursor
from spectron import SpectronClient
from spectron.maintenance import blue_green_replay, catch_up

WRITERS = 32
EACH = 20


async def _until_readable(conn: psycopg.AsyncConnection[Any]) -> None:
    """Wait (bounded) until the server's answers sit unread in the connection's socket."""
    ready, _, _ = await asyncio.to_thread(select.select, [conn.pgconn.socket], [], [], 60)
    assert ready, "the server never answered the flush request"


async def test_a_fetch_reads_its_statement_even_when_an_earlier_result_arrives_late(
    database: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(database) as conn:
        async with conn.pipeline(), conn.transaction(), PipelinedCursor[Any](conn) as cur:
            await cur.execute("CREATE TEMP TABLE t (x int)")
            await cur.execute("INSERT INTO t VALUES (1)")
            # what a busy batch does by itself: the server flushes the INSERT's result, which
            # then lands while the next statement is being sent
            conn.pgconn.send_flush_request()
            conn.pgconn.flush()
            await _until_readable(conn)
            await cur.execute("SELECT 42")
            assert await cur.fetchone() == (42,)
            await cur.execute("INSERT INTO t VALUES (2)")
            conn.pgconn.send_flush_request()
            conn.pgconn.flush()
            await _until_readable(conn)
            await cur.execute("SELECT x FROM t ORDER BY x")
            assert await cur.fetchall() == [(1,), (2,)]


async def test_concurrent_writers_with_the_default_extractor_project_every_batch(
    make_client: Callable[..., SpectronClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="projectors.tailer")
    # one partition: the writers outrun the projector, which then applies batches of hundreds of
    # events, the server's answers streaming back while later statements are still being sent
    client = make_client(extractor="patterns", partitions=1)

    async def writer(n: int) -> None:
        async with client.sessions.create(scope={"org": "acme", "agent": f"w{n}"}) as session:
            for k in range(EACH):
                await session.remember(
                    f"Vendor{n}x{k} raised its price to ${k + 10}. Vendor{n}x{k} is based in Lyon."
                )

    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    service = await client.service()
    assert await catch_up(service, bound=600) == 0
    failures = [r.getMessage() for r in caplog.records if "projection batch failed" in r.message]
    assert failures == []
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*), count(DISTINCT f.memory_id) FROM memories m"
            " JOIN fact_sources f USING (memory_id)"
        )
        assert await cur.fetchone() == (WRITERS * EACH, WRITERS * EACH)
        cur = await conn.execute(
            "SELECT count(*) FROM attribute_values v JOIN memories m USING (memory_id)"
            " WHERE v.scope_key = m.scope_key AND v.value = '+$' || substring(m.content, '\\$(\\d+)')"
            " AND lower(m.content) LIKE v.name_key || ' %%'"
        )
        row = await cur.fetchone()
        assert row is not None and row[0] == WRITERS * EACH  # each price on its own memory
    report = await blue_green_replay(service, verify=True)
    assert report.switched and report.live_hash == report.rebuilt_hash
