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
from dataclasses import dataclass, field

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

TABLES = ("memories", "entities", "attribute_values", "relations")
# autovacuum's analyze threshold: 50 rows + 10% of the table (autovacuum_analyze_* defaults)
BASE_ROWS = 50
SCALE = 0.1
# rows the tailer applies between looks at the counters (a look is one cheap catalog query)
CHECK_EVERY = 1_000

_STALE = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = current_schema() AND s.relname = ANY(%s)
  AND s.n_mod_since_analyze > %s + %s * greatest(c.reltuples, 0)
"""


async def stale_tables(pool: AsyncConnectionPool) -> list[str]:
    """Projection tables changed by more than autovacuum's analyze threshold since last analyzed."""
    async with pool.connection() as conn:
        cur = await conn.execute(_STALE, [list(TABLES), BASE_ROWS, SCALE])
        return [str(row[0]) for row in await cur.fetchall()]


async def analyze(pool: AsyncConnectionPool, tables: list[str]) -> None:
    """ANALYZE each table (a sample of rows: ~0.1-1 s even at a million), skipping a busy one.

    A table being indexed concurrently (projectors.vector_index rebuilding the graph) is skipped:
    queued behind the build while holding its snapshot, the ANALYZE deadlocked the build's last
    phase, which Postgres then cancelled (the graph's build lost, its index left invalid).
    """
    async with pool.connection() as conn:
        for table in tables:
            await conn.execute(sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(sql.Identifier(table)))
            await conn.commit()


@dataclass
class StatisticsKeeper:
    """Counts rows the tailer applies; once caught up after many, analyzes what went stale."""

    pool: AsyncConnectionPool
    applied: int = 0
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def note(self, applied: int) -> None:
        """The tailer applied `applied` records."""
        self.applied += applied

    def caught_up(self) -> None:
        """The tailer found nothing left to apply: analyze in the background if it is due."""
        if self.applied < CHECK_EVERY or (self._task is not None and not self._task.done()):
            return
        self.applied = 0
        self._task = asyncio.create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            if tables := await stale_tables(self.pool):
                await analyze(self.pool, tables)
                log.info("analyzed %s after a large projected batch", ", ".join(tables))
        except Exception as exc:  # statistics are an optimisation: never stop projection for them
            log.warning("could not refresh planner statistics: %s", exc)

    async def close(self) -> None:
        """Cancel an ANALYZE under way."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
