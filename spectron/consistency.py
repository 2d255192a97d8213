"""Read-your-writes (DESIGN rule 3): wait, bounded, until projections cover the writes a reader is owed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from spectron.errors import ReadYourWritesTimeout
from spectron.log import EventLog
from spectron.log.owed import owed_offsets
from spectron.pace import Pace
from spectron.positions import PROJECTED_CHANNEL, enrichment_positions, projection_positions
from spectron.recall import VISIBLE, visibility_params
from spectron.scope import Scope

log = logging.getLogger(__name__)
# An enrichment pass whose output cannot arrive within a read's bound is not waited for: the read
# answers at once with the keyword fallback and the pending count, rather than holding a request
# (and the pool, with its checks) to the bound for nothing. With the pass's measured pace: its
# backlog up to the owed writes takes longer than the time left. Unmeasured (another process
# runs it): it trails some owed write by more than this many records (the default model embeds
# a batch of 32 in about half a second on two idle cores).
HOPELESS_BACKLOG = 256
# how often a waiting reader looks again without being woken: covers a lost or late notification
RECHECK = 0.1
COUNT_SHARE = 4  # wait at least this many times as long as the last pending count took


class ProjectionWatch:
    """Wakes waiting readers when a projection batch commits (any process), instead of polling.

    One LISTEN connection per process on the channel the driver notifies after each batch, so
    many readers waiting at once cost one connection, not a stream of position queries that
    would hold the pool the projector needs.
    """

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def mark(self) -> asyncio.Event:
        """Take before reading the positions; `wait` on it returns if a batch committed since."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())
        return self._changed

    async def wait(self, mark: asyncio.Event, timeout: float) -> None:
        """Return once a batch committed after `mark` was taken, or after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await mark.wait()

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        while True:
            try:
                async with await AsyncConnection.connect(self._uri, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PROJECTED_CHANNEL}")
                    self._wake()  # anything committed before LISTEN: readers look again
                    async for _ in conn.notifies():
                        self._wake()
            except psycopg.Error as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc  # psycopg turned a cancel into an error
                log.info("projection watch lost its connection (%s); readers poll meanwhile", exc)
                await asyncio.sleep(1.0)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


# What enrichment a reader waits for, as a condition on a memory row `m` that is still missing it.
AWAITING_VECTOR = "m.embedding IS NULL"
AWAITING_FACTS = (
    # reflections are syntheses, never extracted (projectors.enrichment.ExtractionEnricher)
    "NOT EXISTS (SELECT 1 FROM reflections r WHERE r.reflection_id = m.memory_id)"
    " AND NOT EXISTS (SELECT 1 FROM fact_sources f WHERE f.memory_id = m.memory_id)"
    " AND NOT EXISTS (SELECT 1 FROM enrichment_failures x"
    " WHERE x.memory_id = m.memory_id AND x.enricher LIKE 'extract:%%')"
)


async def owed_heads(
    pool: AsyncConnectionPool,
    event_log: EventLog,
    scope: Scope,
    after: Mapping[int, int] | None = None,
) -> dict[int, int]:
    """Per partition, what a strong read at `scope` waits for (see spectron.log.owed).

    The acknowledged writes its scope can see, whichever process appended them, and `after`: the
    heads of writes a client says it made (a token it passes on), capped at the log's end so a
    token from elsewhere cannot make a reader wait for offsets that do not exist.
    """
    async with pool.connection() as conn:
        heads = await owed_offsets(conn, scope)
    if after:
        ends = await event_log.end_offsets()
        for partition, head in after.items():
            if partition in ends:
                heads[partition] = max(heads.get(partition, 0), min(head, ends[partition]))
    return heads


async def _hopeless(
    conn: AsyncConnection[Any],
    enrichment: str,
    heads: dict[int, int],
    pace: Pace | None,
    left: float,
) -> bool:
    """True when the pass cannot reach the owed writes in the time left (see HOPELESS_BACKLOG)."""
    done = await enrichment_positions(conn, enrichment)
    backlog = {p: head - done.get(p, 0) for p, head in heads.items() if head > done.get(p, 0)}
    if pace is not None and pace.seconds_per_record is not None:
        return sum(backlog.values()) * pace.seconds_per_record > left
    return any(behind > HOPELESS_BACKLOG for behind in backlog.values())


def _pending_sql(awaiting: str, scoped: bool) -> str:
    # only memories appended before the read began count: later ones are not owed to this reader
    sql = (
        'SELECT count(*) FROM memories m WHERE m."offset" < (%(heads)s::bigint[])[m.partition + 1]'
        f" AND {awaiting}"
    )
    return f"{sql} AND {VISIBLE}" if scoped else sql


async def wait_for_projections(
    pool: AsyncConnectionPool,
    heads: dict[int, int],
    scope: Scope | None,
    bound: float,
    awaiting: str | None = AWAITING_VECTOR,
    watch: ProjectionWatch | None = None,
    enrichment: str | None = None,
    pace: Pace | None = None,
    project: Callable[[int, int], Awaitable[bool]] | None = None,
) -> int:
    """Wait until records before `heads` are projected and enriched; return how many still are not.

    `awaiting` names the enrichment to wait for (None: only the projection). With a scope, only
    memories visible from it count. Raises ReadYourWritesTimeout when even the memories themselves
    are not projected by the bound; when only enrichment is missing it returns the count instead.
    With a `watch`, it looks again when a batch commits rather than polling. `enrichment` names
    the pass producing what `awaiting` waits for (embedded log only): when it trails the owed
    writes by more than it can catch up on in the time left (at its `pace`, when measured), the
    count is returned at once. `project(partition, position)` applies a batch of a partition's
    records from a position (True if it applied any; False if another projector holds the
    partition): a reader owed a write helps the projection reach it instead of waiting for the
    projector to come round to its partition.
    """
    deadline = time.monotonic() + bound
    heads_array = [heads.get(p, 0) for p in range(max(heads, default=-1) + 1)]
    params = {"heads": heads_array, **(visibility_params(scope) if scope is not None else {})}
    pending_sql = _pending_sql(awaiting, scope is not None) if awaiting else None
    delay = 0.001
    recount_at = 0.0  # no pending count before this (monotonic), polling or woken
    while True:
        mark = watch.mark() if watch is not None else None
        async with pool.connection() as conn:
            positions = await projection_positions(conn)
            behind = {p: h for p, h in heads.items() if positions.get(p, 0) < h}
            if not behind:
                if pending_sql is None:
                    return 0
                counted = time.monotonic()
                cur = await conn.execute(pending_sql, params)
                row = await cur.fetchone()
                pending = int(row[0]) if row else 0
                # a count over a whole large store is not free (~0.5 s at 1M memories): counting
                # back to back (polled, or woken by movers committing every few tens of ms) would
                # take a core from the movers it waits for
                recount_at = time.monotonic() + (time.monotonic() - counted) * COUNT_SHARE
                if pending == 0 or time.monotonic() >= deadline:
                    return pending
                left = deadline - time.monotonic()
                if enrichment is not None and await _hopeless(conn, enrichment, heads, pace, left):
                    return pending
        if behind and project is not None and time.monotonic() < deadline:
            helped = False
            for partition in sorted(behind):
                helped = await project(partition, positions.get(partition, 0)) or helped
            if helped:
                continue  # look again at once: the batch may have covered the owed writes
        if behind and time.monotonic() >= deadline:
            lag = sum(h - positions.get(p, 0) for p, h in behind.items())
            raise ReadYourWritesTimeout(
                f"projections are {lag} events behind the log after {bound:.2f}s"
                f" (partitions {sorted(behind)}); retry, raise the bound, or use consistency='eventual'"
            )
        if watch is not None and mark is not None:
            await watch.wait(mark, max(0.0, min(RECHECK, deadline - time.monotonic())))
        else:
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 0.02)
        rest = min(recount_at, deadline) - time.monotonic()  # however the wait ended
        if rest > 0:
            await asyncio.sleep(rest)
