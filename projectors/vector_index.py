"""The HNSW graph of the recall index: kept behind the projection, and rebuilt after big backlogs.

Adding one vector to pgvector's HNSW graph costs ~3 ms at 100k halfvec rows on 2 cores, and more
as the graph grows; inserting a row costs well under 1 ms. So the projection only stages a vector
(staged_vectors) and movers set it on its memory in small transactions of their own: a memory is
keyword-visible without waiting for the graph inserts of the vectors logged before it, and dense-
visible once moved (read-your-writes waits for that, as it waited for the projection before).

Building the graph over rows already there costs ~0.25 ms a row. When the vectors on their way
dwarf the graph (a store loaded from a log, a bulk import, a new model's pass) and arrive faster
than the graph takes them (they pile up in staged_vectors), the graph is dropped, the backlog
moved at row speed, and the graph built again with CREATE INDEX CONCURRENTLY once the backlog
has settled, so projection and reads go on meanwhile. Until then the dense leg ranks the
visible rows exactly: slower, never wrong. The drop is recorded in projection_meta in the
transaction that drops the index, so a process that dies while the graph is away leaves the
build to the next one, which resumes in this state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from spectron.db import STORE_RETRY
from spectron.errors import StoreUnavailable
from spectron.host import physical_memory
from spectron.log import EventLog
from spectron.positions import notify_projected, projection_positions

log = logging.getLogger(__name__)

INDEX = "memories_embedding"
DEFERRED_KEY = "vector_index:deferred"  # projection_meta: the graph's definition while it is away
BUILD_LOCK = "vector_index:build"  # advisory lock: one build at a time
# pending vectors (memories awaiting theirs + records not projected yet) before dropping can pay
BULK_MIN = 20_000
# drop only when the graph holds fewer vectors than this many times the pending ones: inserting
# costs ~12x building per row, so even a graph 4x the backlog is cheaper to build again
REBUILD_RATIO = 4
# ...and only when vectors arrive faster than the graph takes them: this many staged, waiting
# for the movers (a slow model's vectors, ~40/s, never pile up: dropping the graph for them would
# leave the dense leg exact, a scan of the store, for as long as the model takes)
STAGED_MIN = 1_000
# pending vectors at or below which the graph is built again (a few seconds of inserts)
SETTLED = 2_000
CHECK_EVERY = 5.0  # seconds between looks at the backlog (counted only when the log moved)
# pgvector builds the HNSW graph in memory up to maintenance_work_mem, on disk past it: at 100k
# vectors, a build that spilled its last 30% took 74 s against 38 s in memory. The graph takes
# a vector's bytes (2 per dimension, halfvec) plus ~750 for its neighbour lists and header (m=16;
# measured: 100 MB held 69,415 384-d vectors). Only this session's builds; at least the old 1 GB,
# at most half this host's memory (the embedded Postgres shares it; a build that does not fit
# then spills to disk rather than fail).
INDEX_BUILD_MEMORY_MIN = 1 << 30
HNSW_BYTES_PER_VECTOR = 750  # besides the vector itself
MOVE_BATCH = 16  # vectors per mover transaction with the graph in place (~50 ms of inserts)
MOVE_BATCH_AWAY = 5_000  # ...and while it is away (row speed)
MOVERS = 2  # movers at once: HNSW inserts take a core each
IDLE_POLL = 0.05  # seconds a mover waits when nothing is staged (one index probe)
DROP_LOCK_TIMEOUT = "1s"  # how long dropping the graph may queue for its table lock

_MOVE = """
WITH moved AS (
  DELETE FROM staged_vectors WHERE memory_id IN (
    SELECT memory_id FROM staged_vectors ORDER BY staged LIMIT %s FOR UPDATE SKIP LOCKED)
  RETURNING memory_id, embedding, model, embedded_at
), applied AS (
  UPDATE memories m
  SET embedding = moved.embedding, embedding_model = moved.model, embedded_at = moved.embedded_at
  FROM moved WHERE m.memory_id = moved.memory_id AND m.embedding IS NULL
  RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM applied)
"""
_COUNTS = """
SELECT (SELECT count(*) FROM memories WHERE embedding IS NULL), (SELECT count(*) FROM memories),
       (SELECT count(*) FROM staged_vectors)
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
    staged: int = 0  # vectors projected and waiting for a mover

    @property
    def pending(self) -> int:
        """Vectors still to come: one per unembedded memory, plus those in the log already."""
        return self.unembedded + self.unprojected

    def worth_dropping(self) -> bool:
        """Whether building the graph after the backlog is cheaper than inserting it row by row."""
        return (
            self.pending >= BULK_MIN
            and self.indexed < REBUILD_RATIO * self.pending
            and self.staged >= STAGED_MIN
        )

    def settled(self) -> bool:
        """Whether the graph should be built again now."""
        return self.pending <= SETTLED


async def move_staged(conn: AsyncConnection[Any], limit: int) -> int:
    """Move up to `limit` staged vectors onto their memories, in the caller's transaction.

    Only a memory still without a vector takes one (the first logged wins); a vector whose
    memory is gone (forgotten) is simply dropped. Returns how many staged vectors were taken:
    0 when none is staged or every staged one is held by another mover (the caller then waits
    instead of spinning on them).
    """
    cur = await conn.execute(_MOVE, [limit])
    taken, applied = await cur.fetchone() or (0, 0)
    if applied:  # readers waiting for a vector look again when this commits, as after a batch
        await notify_projected(conn)
    return int(taken)


async def move_all_staged(conn: AsyncConnection[Any]) -> None:
    """Move every staged vector (replay, before it builds the graph)."""
    async with conn.transaction():
        await conn.execute(_MOVE, [2**62])


async def measure_backlog(
    conn: AsyncConnection[Any], ends: dict[int, int], positions: dict[int, int]
) -> Backlog:
    """Counts of indexed, pending and staged vectors (~0.1 s at a million memories)."""
    unprojected = sum(max(end - positions.get(p, 0), 0) for p, end in ends.items())
    cur = await conn.execute(_COUNTS)
    row = await cur.fetchone()
    unembedded, total, staged = (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
    return Backlog(total - unembedded, unembedded, unprojected, staged)


def index_build_memory(vectors: int, dim: int, host_memory: int | None) -> int:
    """Bytes of maintenance_work_mem for the deferred index builds: the HNSW graph in memory."""
    graph = vectors * (2 * dim + HNSW_BYTES_PER_VECTOR) * 5 // 4  # a quarter to spare
    wanted = max(INDEX_BUILD_MEMORY_MIN, graph)
    if host_memory is not None:
        wanted = min(wanted, max(INDEX_BUILD_MEMORY_MIN, host_memory // 2))
    return wanted


async def size_graph_build_memory(conn: AsyncConnection[Any]) -> None:
    """Set this session's maintenance_work_mem to hold the graph of the vectors there are now."""
    cur = await conn.execute(
        "SELECT count(embedding), max(a.atttypmod) FROM memories"
        " CROSS JOIN (SELECT atttypmod FROM pg_attribute"
        "  WHERE attrelid = 'memories'::regclass AND attname = 'embedding') a"
    )
    vectors, dim = await cur.fetchone() or (0, 0)
    memory = index_build_memory(int(vectors or 0), int(dim or 0), physical_memory())
    await conn.execute(
        "SELECT set_config('maintenance_work_mem', %s, false)", [f"{memory // 1024}kB"]
    )


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
        # queued behind a long reader (a state hash, a slow scan), the drop would hold up every
        # recall and projection batch behind it: give up instead, the next look tries again
        await conn.execute("SELECT set_config('lock_timeout', %s, true)", [DROP_LOCK_TIMEOUT])
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
            # as in drop_graph
            await conn.execute("SELECT set_config('lock_timeout', %s, false)", [DROP_LOCK_TIMEOUT])
            await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX)))
            await conn.execute("RESET lock_timeout")  # the build waits for older snapshots
        if state is None or not state[0]:
            # Postgres's own pg_get_indexdef output, recorded by drop_graph: not input
            definition = str(recorded[0]).replace("CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1)
            await size_graph_build_memory(conn)
            started = time.perf_counter()
            await conn.execute(sql.SQL(definition))
            log.info("built the vector index in %.1f s", time.perf_counter() - started)
        # the backlog set most vectors after the projection last analyzed (projectors.statistics
        # runs when the tailer catches up, before the movers have): without this the planner
        # takes most memories for unembedded until autovacuum comes round. Before the record
        # goes, so that whoever waits for the graph (maintenance.catch_up) finds fresh statistics
        await conn.execute("ANALYZE memories")
        await conn.execute("DELETE FROM projection_meta WHERE key = %s", [DEFERRED_KEY])
        return True


@dataclass
class VectorIndexKeeper:
    """The projection tailer's view of the graph: away or not, and when to drop or build it."""

    pool: AsyncConnectionPool
    event_log: EventLog
    away: bool = False
    _seen: tuple[dict[int, int], dict[int, int]] | None = field(default=None, repr=False)
    _build: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def move_batch(self) -> int:
        """Vectors per mover transaction: many while the graph is away (no graph inserts)."""
        return MOVE_BATCH_AWAY if self.away else MOVE_BATCH

    async def look(self) -> None:
        """Drop the graph before a large backlog, or build it once the backlog has settled.

        The backlog is counted only when the log or the projection moved since the last look.
        """
        if self._build is not None and not self._build.done():
            return
        async with self.pool.connection() as conn:
            self.away = await deferred(conn)
            seen = (await self.event_log.end_offsets(), await projection_positions(conn))
            if seen == self._seen and not self.away:
                return
            self._seen = seen
            backlog = await measure_backlog(conn, *seen)
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


async def move_forever(pool: AsyncConnectionPool, keeper: VectorIndexKeeper) -> None:
    """Move staged vectors onto their memories, a small transaction at a time, forever."""
    while True:
        try:
            limit = keeper.move_batch
            async with pool.connection() as conn:
                taken = await move_staged(conn, limit)
            if not taken:
                await asyncio.sleep(IDLE_POLL)
        except StoreUnavailable as exc:
            log.info("the vector mover waits for the database: %s", exc)
            await asyncio.sleep(STORE_RETRY)
        except Exception:
            log.exception("moving staged vectors failed; retrying")
            await asyncio.sleep(1.0)


async def run_vector_index(pool: AsyncConnectionPool, event_log: EventLog) -> None:
    """Keep the graph: MOVERS movers, and a look at the backlog every CHECK_EVERY seconds."""
    keeper = VectorIndexKeeper(pool, event_log)
    movers = [asyncio.create_task(move_forever(pool, keeper)) for _ in range(MOVERS)]
    try:
        while True:
            try:
                await keeper.look()
            except Exception as exc:  # an optimisation: never stop the movers for it
                log.warning("could not look at the vector backlog: %s", exc)
            await asyncio.sleep(CHECK_EVERY)
    finally:
        for mover in movers:
            mover.cancel()
        await asyncio.gather(*movers, return_exceptions=True)
        await keeper.close()
