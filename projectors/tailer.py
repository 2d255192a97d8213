"""Embedded-mode drivers: asyncio loops that tail the Postgres log into projections and enrichment.

Any number of processes may run them against one database: each partition's position row is
locked for the duration of a batch (SKIP LOCKED), so a batch is applied by exactly one of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import ProjectionGap, apply_records
from projectors.enrichment import Enricher
from projectors.enrichment_input import enrichment_window
from projectors.statistics import StatisticsKeeper
from projectors.vector_index import run_vector_index
from spectron.db import STORE_RETRY
from spectron.errors import ContentForgotten, MalformedEvent, StoreUnavailable
from spectron.events import MemoryLike, MemoryRecorded, ReflectionRecorded
from spectron.log import EventLog, TransactionalLog, decode_record
from spectron.pace import Pace
from spectron.positions import (
    enrichment_positions,
    ensure_enrichment_positions,
    lock_enrichment_position,
    projection_positions,
    set_enrichment_position,
)
from spectron.sealing import drop_forgotten, unseal

log = logging.getLogger(__name__)
BATCH = 500
IDLE_WAIT = 0.5
# enrichment appends its output behind the writes readers wait for: while the projection trails
# a partition's end by more than this, enrichment leaves the partition alone so the projector
# reaches the writes first (a memory not embedded yet is found by keyword meanwhile)
PROJECTION_FIRST = 100
PARALLEL = 2  # partitions applied at once, each on a connection of the projector pool


async def project_once(
    pool: AsyncConnectionPool, event_log: EventLog, ctx: ProjectionContext
) -> int:
    """Apply whatever the log holds beyond the stored positions, one batch per partition.

    Partitions are independent (Kafka mode runs them in separate workers): up to PARALLEL of
    them are applied at once, each on a connection of its own, so Postgres's share of the work
    (HNSW inserts above all) runs on more than one core.
    """
    async with pool.connection() as conn:
        positions = await projection_positions(conn)
    ends = await event_log.end_offsets()
    behind = [
        (p, positions.get(p, 0)) for p, end in sorted(ends.items()) if positions.get(p, 0) < end
    ]
    gate = asyncio.Semaphore(PARALLEL)

    async def one(partition: int, start: int) -> int:
        async with gate:
            records = await event_log.read(partition, start, BATCH)
            try:
                async with pool.connection() as conn:
                    return await apply_records(conn, partition, records, ctx) or 0
            except ProjectionGap as gap:  # the position moved back meanwhile: next time from it
                log.info("%s; reading again from the projection's position", gap)
                return 0

    return sum(await asyncio.gather(*(one(p, start) for p, start in behind)))


async def run_projection_tailer(
    pool: AsyncConnectionPool, event_log: EventLog, ctx: ProjectionContext
) -> None:
    """Project forever: drain, then sleep until the log is appended to.

    Once caught up after many rows, it refreshes the planner's statistics (projectors.statistics).
    Vectors are staged; the HNSW graph is kept by a task of its own (projectors.vector_index).
    """
    statistics = StatisticsKeeper(pool)
    vectors = asyncio.create_task(run_vector_index(pool, event_log))
    try:
        while True:
            try:
                if applied := await project_once(pool, event_log, ctx):
                    statistics.note(applied)
                    continue
                statistics.caught_up()
                await event_log.wait_for_appends(IDLE_WAIT)
            except StoreUnavailable as exc:  # the watch brings it back; no traceback to log
                log.info("projection waits for the database: %s", exc)
                await asyncio.sleep(STORE_RETRY)
            except Exception:
                log.exception("projection batch failed; retrying")
                await asyncio.sleep(1.0)
    finally:  # a cancel can land in a retry's sleep too: the graph's keeper never outlives this
        await statistics.close()
        vectors.cancel()
        await asyncio.gather(vectors, return_exceptions=True)


async def enrich_once(
    pool: AsyncConnectionPool, event_log: TransactionalLog, enricher: Enricher
) -> int:
    """Run one batch per partition; outputs and position commit in one transaction (exactly once).

    Partitions whose projection trails far behind are left for later (PROJECTION_FIRST).
    """
    ends = await event_log.end_offsets()
    async with pool.connection() as conn:
        await ensure_enrichment_positions(conn, enricher.name, event_log.partitions)
        positions = await enrichment_positions(conn, enricher.name)
        projected = await projection_positions(conn)
    total = 0
    for partition, end in sorted(ends.items()):
        if positions.get(partition, 0) >= end:
            continue
        if end - projected.get(partition, 0) > PROJECTION_FIRST:
            continue  # projection first (see PROJECTION_FIRST); the tailer comes back
        async with pool.connection() as conn, conn.transaction():
            total += await _enrich_partition(conn, event_log, enricher, partition)
    return total


async def _enrich_partition(
    conn: Any, event_log: TransactionalLog, enricher: Enricher, partition: int
) -> int:
    start = await lock_enrichment_position(conn, enricher.name, partition)
    if start is None:
        return 0  # another process is running this pass on this partition
    # only the memories of the window are opened (enrichment_input): opening is most of the cost
    window, passed = enrichment_window(
        await event_log.read(partition, start, BATCH), enricher.batch_size
    )
    last = start - 1 if passed is None else passed
    memories: list[MemoryLike] = []
    for record in await unseal(conn, window):
        try:
            event = decode_record(record).event
        except (MalformedEvent, ContentForgotten):
            event = None  # dead-lettered by the projector, or forgotten: nothing to enrich
        if isinstance(event, MemoryRecorded | ReflectionRecorded):
            memories.append(event)
    derived = await drop_forgotten(conn, await enricher.enrich(conn, memories))
    await event_log.append_in_transaction(conn, derived)
    await set_enrichment_position(conn, enricher.name, partition, last + 1)
    return last + 1 - start


async def run_enrichment_tailer(
    pool: AsyncConnectionPool,
    event_log: TransactionalLog,
    enricher: Enricher,
    pace: Pace | None = None,
) -> None:
    """Enrich forever; a failing model backs off and retries, never blocking the memory itself."""
    backoff = 0.5
    while True:
        try:
            started = time.monotonic()
            if done := await enrich_once(pool, event_log, enricher):
                if pace is not None:
                    pace.record(done, time.monotonic() - started)
                backoff = 0.5
                continue
            await event_log.wait_for_appends(IDLE_WAIT)
        except StoreUnavailable as exc:  # not the model's fault: no backoff to catch up after
            log.info("%s waits for the database: %s", enricher.name, exc)
            await asyncio.sleep(STORE_RETRY)
        except Exception as exc:
            log.warning("%s failed (%s); retrying in %.1fs", enricher.name, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
