"""Coalesced statements (projectors.coalesce): fewer statements, the same rows as one per event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
import pytest
from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from projectors.coalesce import MAX_ROWS, coalesced, without_result
from projectors.driver import PipelinedCursor, apply_records
from projectors.replay import replay, reset_projection
from projectors.vector_index import move_all_staged
from spectron import SpectronClient
from spectron.db import open_pool
from spectron.records import RawRecord
from spectron.service import MemoryService
from spectron.statehash import projection_hash
from tests.replay_support import fill_every_event_type

_UPSERT = "INSERT INTO t (k, v) VALUES (%s, %s) ON CONFLICT (k) DO NOTHING"
# the shapes of the projectors' other statements
_SET = "UPDATE t SET v = %s WHERE k = %s AND v IS NULL"
_REPLACE = "INSERT INTO t (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"


def test_only_result_less_inserts_that_do_nothing_on_conflict_become_multi_row() -> None:
    assert without_result(_UPSERT) and without_result(_SET)
    assert not without_result("DELETE FROM t WHERE k = %s RETURNING k")
    assert not without_result("SELECT k FROM t WHERE k = %s")
    assert coalesced(_SET, [[1, 2]] * 2) is None  # an UPDATE: executemany
    assert coalesced(_REPLACE, [[1, 2]] * 2) is None  # DO UPDATE cannot touch a row twice
    statements = coalesced(_UPSERT, [[n, str(n)] for n in range(MAX_ROWS + 1)])
    assert statements is not None and [len(values) for _, values in statements] == [
        2 * MAX_ROWS,
        2,
    ]
    assert statements[1][0] == "INSERT INTO t (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING"


async def test_a_run_goes_as_one_statement_with_the_rows_one_by_one_would_leave(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    original = AsyncCursor.execute  # the raw cursor's too: AsyncRawCursor inherits it

    async def counted(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        sent.append(str(query))
        return await original(self, query, *args, **kw)

    monkeypatch.setattr(AsyncCursor, "execute", counted)
    rows = [(1, "first"), (2, "b"), (1, "second"), (3, "c"), (2, "again")]
    async with await psycopg.AsyncConnection.connect(database) as conn:
        await conn.execute("CREATE TABLE t (k int PRIMARY KEY, v text, n serial)")
        await conn.commit()
        async with conn.pipeline(), conn.transaction(), PipelinedCursor[Any](conn) as cur:
            sent.clear()
            for row in rows:
                await cur.execute(_UPSERT, list(row))
            assert sent == []  # waiting: nothing read their results yet
            await cur.execute("SELECT k, v FROM t ORDER BY n")  # sends the run first, in order
            assert await cur.fetchall() == [(1, "first"), (2, "b"), (3, "c")]
            assert len(sent) == 2 and sent[0].count("$") == 2 * len(rows)
        # the same statements one by one, each in its own round: the same rows
        await conn.execute("TRUNCATE t")
        for row in rows:
            await conn.execute(_UPSERT, list(row))
        cur2 = await conn.execute("SELECT k, v FROM t ORDER BY k")
        assert await cur2.fetchall() == [(1, "first"), (2, "b"), (3, "c")]


@asynccontextmanager
async def _fresh_projection(
    service: MemoryService, name: str
) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a new, empty projection schema pinned to the service's model."""
    schema = f"{name}_{uuid.uuid4().hex[:8]}"
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        await reset_projection(conn, schema, service.embedder.dim, service.context)
    pool = await open_pool(service.runtime.uri, schema, 2)
    try:
        yield pool
    finally:
        await pool.close()


async def _project_one_by_one(
    service: MemoryService, records: dict[int, list[RawRecord]], until: datetime | None
) -> str:
    """A fresh projection, one record per transaction: no statement run longer than one event's."""
    async with _fresh_projection(service, "one_by_one") as pool, pool.connection() as conn:
        await conn.set_autocommit(True)
        for partition, mine in sorted(records.items()):
            for record in mine:
                if until is None or record.recorded_at <= until:
                    await apply_records(
                        conn, partition, [record], service.context, wait=True, contiguous=False
                    )
        await move_all_staged(conn)  # the movers' half of a vector's effect, as replay does
        return await projection_hash(conn)


async def _replayed(service: MemoryService, until: datetime | None) -> str:
    """A fresh projection by `replay`: batches of thousands, runs coalesced."""
    async with _fresh_projection(service, "replayed") as pool:
        await replay(pool, service.log, service.context, until=until)
        async with pool.connection() as conn:
            return await projection_hash(conn)


async def test_replay_in_batches_hashes_like_one_event_per_transaction(
    make_client: Callable[..., SpectronClient],
) -> None:
    client = make_client(extractor="none")
    await fill_every_event_type(client)  # supersessions, poison, reflections, a forget
    service = await client.service()
    records: dict[int, list[RawRecord]] = {}
    for partition, end in (await service.log.end_offsets()).items():
        records[partition] = await service.log.read(partition, 0, end) if end else []
    # the whole log, and the prefix logged by halfway (as-of)
    times = sorted(r.recorded_at for mine in records.values() for r in mine)
    for until in (None, times[len(times) // 2]):
        assert await _replayed(service, until) == await _project_one_by_one(service, records, until)
