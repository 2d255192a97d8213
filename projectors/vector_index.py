"""The vector index under a large backlog: built once after it, not kept up row by row.

Adding one vector to pgvector's HNSW graph costs ~3 ms at 100k halfvec rows on 2 cores, and more
as the graph grows; building the graph over rows already there costs ~0.25 ms a row. When the
vectors on their way dwarf the graph (a store loaded from a log, a bulk import, a new model's
pass), the projection tailer drops the graph, applies the backlog at row speed, and builds the
graph again with CREATE INDEX CONCURRENTLY once the backlog is settled, so projection and reads go
on meanwhile. Until then the dense leg ranks the visible rows exactly: slower, never wrong.

The drop is recorded in projection_meta in the transaction that drops the index, so a process that
dies while the graph is away leaves the build to the next tailer, which resumes in this state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from spectron.log import EventLog
from spectron.positions import projection_positions

log = logging.getLogger(__name__)

INDEX = "memories_embedding"
DEFERRED_KEY = "vector_index:deferred"  # projection_meta: the graph's definition while it is away
BUILD_LOCK = "vector_index:build"  # advisory lock: one build at a time
# pending vectors (memories awaiting theirs + records not projected yet) before dropping can pay
BULK_MIN = 20_000
# drop only when the graph holds fewer vectors than this many times the pending ones: inserting
# costs ~12x building per row, so even a graph 4x the backlog is cheaper to build again
REBUILD_RATIO = 4
# pending vectors at or below which the graph is built again (a few seconds of inserts)
SETTLED = 2_000
CHECK_EVERY = 5.0  # seconds between looks while the tailer is busy
BUILD_MEMORY = "1GB"  # pgvector builds the graph in memory up to this (~1 KB per 384-d halfvec)
BULK_VECTORS = 10_000  # vectors per live transaction while the graph is away (no HNSW inserts)

_COUNTS = """
SELECT (SELECT count(*) FROM memories WHERE embedding IS NULL), (SELECT count(*) FROM memories)
"""
_INDEX_STATE = """
SELECT x.indisvalid, pg_get_indexdef(x.indexrelid) FROM pg_index x
WHERE x.indexrelid = to_regclass(%s)
"""


@dataclass(frozen=True)
class Backlog:
    """What the graph holds and what is on its way to it."""

    indexed: int  # memories with a vector
    unembedded: int  # memories awaiting theirs
    unprojected: int  # log records the projection has not applied yet (vectors among them)

    @property
    def pending(self) -> int:
        """Vectors still to come: one per unembedded memory, plus those in the log already."""
        return self.unembedded + self.unprojected

    def worth_dropping(self) -> bool:
        """Whether building the graph after the backlog is cheaper than inserting it row by row."""
        return self.pending >= BULK_MIN and self.indexed < REBUILD_RATIO * self.pending

    def settled(self) -> bool:
        """Whether the graph should be built again now."""
        return self.pending <= SETTLED


async def measure_backlog(conn: AsyncConnection[Any], event_log: EventLog) -> Backlog:
    """Counts of indexed and pending vectors (two counts: ~0.1 s at a million memories)."""
    ends = await event_log.end_offsets()
    positions = await projection_positions(conn)
    unprojected = sum(max(end - positions.get(p, 0), 0) for p, end in ends.items())
    cur = await conn.execute(_COUNTS)
    row = await cur.fetchone()
    unembedded, total = (int(row[0]), int(row[1])) if row else (0, 0)
    return Backlog(total - unembedded, unembedded, unprojected)


async def current_schema(conn: AsyncConnection[Any]) -> str:
    """The projection schema this connection sees first."""
    cur = await conn.execute("SELECT current_schema()")
    row = await cur.fetchone()
    return str(row[0]) if row else "public"


async def deferred(conn: AsyncConnection[Any]) -> bool:
    """Whether the graph is away (dropped for a backlog, not built again yet)."""
    cur = await conn.execute("SELECT 1 FROM projection_meta WHERE key = %s", [DEFERRED_KEY])
    return await cur.fetchone() is not None


async def drop_graph(conn: AsyncConnection[Any]) -> bool:
    """Drop the HNSW index, recording its definition in the same transaction; False if it is gone."""
    async with conn.transaction():
        # one process decides: a second one waits here, then finds the index gone
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [DEFERRED_KEY])
        cur = await conn.execute(_INDEX_STATE, [INDEX])
        row = await cur.fetchone()
        if row is None or not row[0] or await deferred(conn):
            return False
        await conn.execute(
            "INSERT INTO projection_meta (key, value) VALUES (%s, %s)", [DEFERRED_KEY, row[1]]
        )
        await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))
    return True


async def build_graph(uri: str, schema: str) -> bool:
    """Build the recorded index concurrently, on a connection of its own; False if another is.

    A build that was cut short (cancelled, or its process died) leaves an invalid index behind:
    it is dropped first. A build that finished before its record was removed is kept. The
    connection is closed after, which releases the build's session lock whatever happened.
    """
    async with await AsyncConnection.connect(uri, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
        cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [BUILD_LOCK])
        row = await cur.fetchone()
        if row is None or not row[0]:
            return False
        cur = await conn.execute("SELECT value FROM projection_meta WHERE key = %s", [DEFERRED_KEY])
        recorded = await cur.fetchone()
        if recorded is None:
            return True
        cur = await conn.execute(_INDEX_STATE, [INDEX])
        state = await cur.fetchone()
        if state is not None and not state[0]:
            await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))
        if state is None or not state[0]:
            # Postgres's own pg_get_indexdef output, recorded by drop_graph: not input
            definition = str(recorded[0]).replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
            await conn.execute(
                "SELECT set_config('maintenance_work_mem', %s, false)", [BUILD_MEMORY]
            )
            started = time.perf_counter()
            await conn.execute(sql.SQL(definition))
            log.info("built the vector index in %.1f s", time.perf_counter() - started)
        await conn.execute("DELETE FROM projection_meta WHERE key = %s", [DEFERRED_KEY])
        return True


@dataclass
class VectorIndexKeeper:
    """The projection tailer's view of the graph: away or not, and when to drop or build it."""

    pool: AsyncConnectionPool
    event_log: EventLog
    away: bool = False
    _looked: float = field(default=float("-inf"), repr=False)
    _build: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def max_vectors(self) -> int | None:
        """Vectors per live transaction: many while the graph is away, else the live_batch default."""
        return BULK_VECTORS if self.away else None

    async def look(self, *, force: bool = False) -> None:
        """Drop the graph before a large backlog, or build it once the backlog has settled.

        Cheap between looks (at most one every CHECK_EVERY seconds unless `force`).
        """
        if self._build is not None and not self._build.done():
            return
        now = time.monotonic()
        if not force and now - self._looked < CHECK_EVERY:
            return
        self._looked = now
        async with self.pool.connection() as conn:
            self.away = await deferred(conn)
            backlog = await measure_backlog(conn, self.event_log)
            schema = await current_schema(conn)
            await conn.commit()
            if not self.away and backlog.worth_dropping():
                if await drop_graph(conn):
                    log.info(
                        "dropped the vector index for a backlog of %d vectors (it held %d);"
                        " it is built again once the backlog settles",
                        backlog.pending,
                        backlog.indexed,
                    )
                self.away = True
                return
        if self.away and backlog.settled():
            self._build = asyncio.create_task(self._rebuild(schema))

    async def _rebuild(self, schema: str) -> None:
        try:
            conninfo = self.pool.conninfo  # our pools are opened on a URI (spectron.db.open_pool)
            if not isinstance(conninfo, str):
                raise TypeError("the projector pool has no plain conninfo to open a build on")
            if await build_graph(conninfo, schema):
                self.away = False
        except Exception as exc:  # the next look tries again; the dense leg stays exact meanwhile
            log.warning("could not build the vector index: %s", exc)

    async def close(self) -> None:
        """Cancel a build under way (the next tailer drops its invalid remains and builds again)."""
        if self._build is not None:
            self._build.cancel()
            await asyncio.gather(self._build, return_exceptions=True)
