"""Maintenance of the projections: wait until they cover the log, hash them, rebuild them.

`rebuild` replays the log into the live schema; `blue_green_replay` replays it into a fresh schema
and switches to it atomically (`spectron rebuild` and `spectron replay`). Both stop the service's
in-process projector loops while they own the projection and start them again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass

from psycopg import sql

from projectors.replay import (
    Progress,
    ReplayReport,
    RowDifference,
    differing_rows,
    replay,
    reset_projection,
    swap_schemas,
)
from projectors.vector_index import deferred
from spectron.consistency import AWAITING_FACTS, wait_for_projections
from spectron.db import open_pool
from spectron.service import MemoryService
from spectron.statehash import projection_hash

GRAPH_POLL = 0.2  # seconds between looks at a vector index being built again


@dataclass(frozen=True)
class BlueGreenReport:
    """Outcome of `replay`: the rebuild, both hashes, and the rows that differ if any."""

    replay: ReplayReport
    live_hash: str
    rebuilt_hash: str
    differences: list[RowDifference]
    switched: bool


async def catch_up(service: MemoryService, bound: float = 60.0) -> int:
    """Wait until projections, embeddings and extracted facts cover the whole log, and the vector
    index dropped for a backlog (projectors.vector_index) is built again.

    Returns how many memories still lack a vector (or, failing that, facts) at the bound; a graph
    still away at the bound counts as one.
    """
    deadline = time.monotonic() + bound
    heads = await service.log.end_offsets()
    missing = await wait_for_projections(service.pool, heads, None, bound)
    if service.extractor is not None:
        missing += await wait_for_projections(service.pool, heads, None, bound, AWAITING_FACTS)
    while True:
        async with service.pool.connection() as conn:
            away = await deferred(conn)
        if not away or time.monotonic() >= deadline:
            return missing + int(away)
        await asyncio.sleep(GRAPH_POLL)


async def state_hash(service: MemoryService) -> str:
    """Stable hash of the projected state (see spectron.statehash)."""
    async with service.pool.connection() as conn:
        return await projection_hash(conn)


async def rebuild(service: MemoryService, progress: Progress | None = None) -> ReplayReport:
    """Drop the projections and replay the log into them; embeddings come from the log."""
    running = service.projectors_running
    await service.begin_replay()
    try:
        async with service.pool.connection() as conn:
            await conn.set_autocommit(True)
            await reset_projection(
                conn, service.settings.projection_schema, service.embedder.dim, service.context
            )
        report = await replay(service.pool, service.log, service.context, progress=progress)
    finally:
        service.end_replay()
    if running:
        service.start_projectors()
    return report


async def blue_green_replay(
    service: MemoryService, verify: bool = False, progress: Progress | None = None
) -> BlueGreenReport:
    """Rebuild the projections from offset 0 into a fresh schema, then switch to it atomically.

    With `verify`, the rebuilt state must hash like the live one; if it does not, nothing is
    switched and the first differing rows are reported.
    """
    live = service.settings.projection_schema
    rebuilt = f"{live}_build_{uuid.uuid4().hex[:8]}"
    running = service.projectors_running
    if running:
        await catch_up(service)
    await service.begin_replay()
    try:
        return await _build_and_switch(service, live, rebuilt, verify, progress)
    except BaseException:
        # a replay cut short (an error, Ctrl-C) leaves no copy of the projections behind
        with contextlib.suppress(Exception):
            async with service.pool.connection() as conn:
                await conn.set_autocommit(True)
                drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                await conn.execute(drop.format(sql.Identifier(rebuilt)))
        raise
    finally:
        service.end_replay()
        if running:
            service.start_projectors()


async def _build_and_switch(
    service: MemoryService, live: str, rebuilt: str, verify: bool, progress: Progress | None
) -> BlueGreenReport:
    """Replay into `rebuilt`, then switch it in unless `verify` finds it differs from `live`."""
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        await reset_projection(conn, rebuilt, service.embedder.dim, service.context)
    build_pool = await open_pool(service.runtime.uri, rebuilt, 4)
    try:
        report = await replay(build_pool, service.log, service.context, progress=progress)
        async with build_pool.connection() as conn:
            rebuilt_hash = await projection_hash(conn)
    finally:
        await build_pool.close()
    live_hash = await state_hash(service)
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        differences = await differing_rows(conn, live, rebuilt) if verify else []
        if verify and live_hash != rebuilt_hash:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(rebuilt)))
            return BlueGreenReport(report, live_hash, rebuilt_hash, differences, False)
        await swap_schemas(conn, live, rebuilt)
    return BlueGreenReport(report, live_hash, rebuilt_hash, [], True)
