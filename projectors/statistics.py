"""Fresh planner statistics after large projected batches, without waiting for autovacuum.

A table loaded fast (a backlog drained, a bulk import, a store grown by 10× in minutes) keeps the
planner's old idea of its size until autovacuum's next round analyzes it (up to a minute, longer
while it is busy vacuuming another table); recall planned on those figures was ~2× slower. The
projection tailer knows when it has just written many rows: once it is caught up, it analyzes the
tables that changed by more than autovacuum's own threshold, on a connection of its own so
projection goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

TABLES = ("memories", "entities", "attribute_values", "relations")
# autovacuum's analyze threshold: 50 rows + 10% of the table (autovacuum_analyze_* defaults)
BASE_ROWS = 50
SCALE = 0.1
# rows the tailer applies between looks at the counters (a look is one cheap catalog query)
CHECK_EVERY = 1_000
RETRY_AFTER = 2.0  # seconds before analyzing again a table that was busy

# A table is due when its changes pass the threshold. The changes are the cumulative statistics'
# count, or for memories at least the records this tailer applied since: a backend reports its
# counts up to 10 s late (PGSTAT_IDLE_INTERVAL), so a batch just applied may not show there yet.
# reltuples is in the catalog, current as of the last ANALYZE or VACUUM.
_DUE = """
SELECT c.relname FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%(tables)s)
  AND greatest(coalesce(s.n_mod_since_analyze, 0),
               CASE WHEN c.relname = 'memories' THEN %(applied)s ELSE 0 END)
      > %(base)s + %(scale)s * greatest(c.reltuples, 0)
"""


async def due_tables(pool: AsyncConnectionPool, applied: int = 0) -> list[str]:
    """Projection tables changed by more than autovacuum's analyze threshold since analyzed.

    `applied` is how many records were projected since memories was last analyzed, as far as
    the caller knows.
    """
    params = {"tables": list(TABLES), "applied": applied, "base": BASE_ROWS, "scale": SCALE}
    async with pool.connection() as conn:
        cur = await conn.execute(_DUE, params)
        return [str(row[0]) for row in await cur.fetchall()]


async def analyze(pool: AsyncConnectionPool, tables: list[str]) -> list[str]:
    """ANALYZE each table (a sample of rows: ~0.1-1 s even at a million); return those skipped.

    A table being vacuumed, analyzed or indexed concurrently is skipped, not waited for: queued
    behind a graph build (projectors.vector_index) while holding its snapshot, the ANALYZE
    deadlocked the build's last phase, which Postgres then cancelled (the build lost, its index
    left invalid).
    """
    skipped: list[str] = []
    async with pool.connection() as conn:
        for table in tables:
            if not await _analyze_unless_busy(conn, table):
                skipped.append(table)
    return skipped


async def _analyze_unless_busy(conn: AsyncConnection[Any], table: str) -> bool:
    """ANALYZE (SKIP_LOCKED) one table; False when it was skipped for its lock."""
    busy: list[bool] = []

    def notice(diag: errors.Diagnostic) -> None:
        # "skipping analyze of ... --- lock not available" is a WARNING, not an error
        if diag.sqlstate == errors.LockNotAvailable.sqlstate:
            busy.append(True)

    conn.add_notice_handler(notice)
    try:
        await conn.execute(sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(sql.Identifier(table)))
        await conn.commit()
    finally:
        conn.remove_notice_handler(notice)
    return not busy


@dataclass
class StatisticsKeeper:
    """Counts rows the tailer applies; once caught up after many, analyzes what went stale.

    A table that was busy (autovacuum on it, a graph build) is tried again RETRY_AFTER later:
    what holds it may well not analyze it.
    """

    pool: AsyncConnectionPool
    applied: int = 0  # records applied since memories was last analyzed here
    _next_look: int = CHECK_EVERY
    _busy: list[str] = field(default_factory=list)  # tables skipped last time, tried again
    _retry_at: float = 0.0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def note(self, applied: int) -> None:
        """The tailer applied `applied` records."""
        self.applied += applied

    def caught_up(self) -> None:
        """The tailer found nothing left to apply: analyze in the background if it is due."""
        if (self.applied < self._next_look and not self._busy) or time.monotonic() < self._retry_at:
            return
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self._refresh(self.applied))

    async def _refresh(self, applied: int) -> None:
        try:
            due = await due_tables(self.pool, applied)
            tables = due + [table for table in self._busy if table not in due]
            skipped = await analyze(self.pool, tables)
        except Exception as exc:  # statistics are an optimisation: never stop projection for them
            log.warning("could not refresh planner statistics: %s", exc)
            self._next_look = applied + CHECK_EVERY  # not every RETRY_AFTER: it may well persist
            self._busy = []
            return
        self._busy = skipped
        if skipped:
            log.info("%s busy: analyzing again in %.0f s", ", ".join(skipped), RETRY_AFTER)
            self._retry_at = time.monotonic() + RETRY_AFTER
        if analyzed := [table for table in tables if table not in skipped]:
            log.info("analyzed %s after a large projected batch", ", ".join(analyzed))
        if "memories" in analyzed:
            self.applied -= applied  # records applied meanwhile count towards the next
            self._next_look = CHECK_EVERY
        elif not skipped:  # nothing due yet: look again after another CHECK_EVERY records
            self._next_look = applied + CHECK_EVERY

    async def close(self) -> None:
        """Cancel an ANALYZE under way."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
