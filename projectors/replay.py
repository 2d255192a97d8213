"""Rebuild: drop the projection schema and replay the whole log into it. No embedder, no extractor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import apply_records
from projectors.vector_index import move_all_staged, size_graph_build_memory
from spectron.db import PROJECTION_MIGRATIONS
from spectron.log import EventLog
from spectron.migrations import migrate
from spectron.positions import fence_projection
from spectron.recall import COUNTS_DEFERRED

# records per log read and per transaction: big enough that commits and reads are noise
BATCH = 5000
# Indexes projectors look rows up through while applying (a chain is relinked by
# attribute_values_chain, a purge finds an entity's first mention by entity_mentions_entity):
# without them each lookup is a scan. Add any such index here. Unique indexes always stay (ON
# CONFLICT needs them); every other index is maintained row by row for nothing until the end
# (keeping all btrees too makes applying ~40% slower at 50k events; HNSW several times).
KEPT_DURING_REPLAY = ("attribute_values_chain", "entity_mentions_entity")
_DEFERRED = "deferred_index:"
# memory_counts is kept by triggers on memories (migration 0009), row by row like an index: a
# replay counts once at the end instead (firing, they added ~20% to applying, measured). Recorded
# as one more deferred build, a statement that recounts and switches the triggers back on.
_COUNT_TRIGGERS = ("memory_counts_insert", "memory_counts_delete")
_RECOUNT = """DO $$ BEGIN
LOCK TABLE memories IN SHARE ROW EXCLUSIVE MODE; -- no memory lands uncounted meanwhile
PERFORM memory_counts_recount();
ALTER TABLE memories ENABLE TRIGGER memory_counts_insert;
ALTER TABLE memories ENABLE TRIGGER memory_counts_delete;
END $$"""

Progress = Callable[[str, int, int], None]
"""Replay progress: (phase, done, total); phase "events" counts records, "indexes" index builds."""


@dataclass(frozen=True)
class ReplayReport:
    """How a replay went: events applied, total seconds, and how they split."""

    events: int
    seconds: float
    apply_seconds: float = 0.0
    index_seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        """Replay throughput, end to end (indexes and statistics included)."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    @property
    def apply_events_per_second(self) -> float:
        """Throughput of applying the events alone (before the deferred indexes are built)."""
        return self.events / self.apply_seconds if self.apply_seconds > 0 else float("inf")


async def reset_projection(
    conn: AsyncConnection[Any], schema: str, embedding_dim: int, ctx: ProjectionContext
) -> None:
    """Drop the projection schema and recreate it empty, pinned to the same embedding model."""
    await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    await migrate(conn, schema, PROJECTION_MIGRATIONS, {"embedding_dim": embedding_dim})
    await conn.execute(
        sql.SQL(
            "INSERT INTO {}.projection_meta (key, value) VALUES ('embedding_model', %s)"
        ).format(sql.Identifier(schema)),
        [ctx.embedding_model],
    )


async def defer_indexes(conn: AsyncConnection[Any]) -> list[str]:
    """Drop the secondary indexes of the current schema, recording them in projection_meta.

    Building an index once over loaded rows is far cheaper than maintaining it row by row (HNSW
    above all). The definitions are recorded in the same transaction as the drops, so a replay
    that dies half-way leaves them for `restore_indexes` (run again at the next service start).
    The memory counts are deferred the same way: their triggers are off until restored.
    """
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid"
            " WHERE t.relnamespace = current_schema()::regnamespace AND NOT x.indisunique"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
            " AND i.relname <> ALL(%s) ORDER BY i.relname",
            [list(KEPT_DURING_REPLAY)],
        )
        found = [(str(name), str(definition)) for name, definition in await cur.fetchall()]
        for name, definition in found:
            await conn.execute(
                "INSERT INTO projection_meta (key, value) VALUES (%s, %s)",
                [_DEFERRED + name, definition],
            )
            await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        cur = await conn.execute(  # a schema older than the counts has none to defer
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'memories'::regclass"
            " AND tgname = ANY(%s) ORDER BY tgname",
            [list(_COUNT_TRIGGERS)],
        )
        triggers = [str(name) for (name,) in await cur.fetchall()]
        for trigger in triggers:
            await conn.execute(
                sql.SQL("ALTER TABLE memories DISABLE TRIGGER {}").format(sql.Identifier(trigger))
            )
        if triggers:
            await conn.execute(
                "INSERT INTO projection_meta (key, value) VALUES (%s, %s)",
                [COUNTS_DEFERRED, _RECOUNT],
            )
    return [name for name, _ in found]


async def restore_indexes(conn: AsyncConnection[Any], progress: Progress | None = None) -> int:
    """Build the indexes (and counts) `defer_indexes` deferred, then ANALYZE; return how many.

    Needs an autocommit connection whose search_path starts with the projection schema. A fresh
    projection without statistics plans recall about 2x slower, hence the ANALYZE.
    """
    cur = await conn.execute(
        "SELECT key FROM projection_meta WHERE starts_with(key, %s) ORDER BY key", [_DEFERRED]
    )
    keys = [str(key) for (key,) in await cur.fetchall()]
    if not keys:
        return 0
    built = 0
    await size_graph_build_memory(conn)
    try:
        for done, key in enumerate(keys):
            if progress is not None:
                progress("indexes", done, len(keys))
            async with conn.transaction():
                # the row lock makes a second restorer (another process starting) wait, then skip
                cur = await conn.execute(
                    "SELECT value FROM projection_meta WHERE key = %s FOR UPDATE", [key]
                )
                row = await cur.fetchone()
                if row is None:
                    continue
                # Postgres's own pg_get_indexdef output, recorded by defer_indexes: not input
                await conn.execute(sql.SQL(row[0]))
                await conn.execute("DELETE FROM projection_meta WHERE key = %s", [key])
                built += 1
        if progress is not None:
            progress("indexes", len(keys), len(keys))
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        for (table,) in await cur.fetchall():
            await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    finally:
        await conn.execute("RESET maintenance_work_mem")
    return built


async def replay(
    pool: AsyncConnectionPool,
    event_log: EventLog,
    ctx: ProjectionContext,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> ReplayReport:
    """Apply every record of every partition from offset 0 into a freshly reset projection.

    Secondary indexes are dropped first and built once at the end (then ANALYZE). Records go
    through `apply_records`, in big transactions with synchronous_commit off: the log is the
    truth, and a replay that dies is simply run again. With `until`, only the records logged at
    or before that time.
    """
    started = time.perf_counter()
    events = 0
    done = 0
    ends = await event_log.end_offsets()
    total = sum(ends.values())
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await defer_indexes(conn)
        await conn.execute("SET synchronous_commit = off")
        try:
            for partition, end in sorted(ends.items()):
                if end == 0:
                    continue
                reading = asyncio.create_task(event_log.read(partition, 0, BATCH))
                try:
                    while True:
                        batch = await reading
                        if not batch:
                            break
                        offset = batch[-1].position.offset + 1
                        if offset < end:  # read the next batch while this one is applied
                            reading = asyncio.create_task(event_log.read(partition, offset, BATCH))
                        # the prefix at a time is every record logged by then; on Kafka, producer
                        # clocks may interleave slightly, so do not stop at the first later record
                        records = [r for r in batch if until is None or r.recorded_at <= until]
                        if records:
                            await apply_records(
                                conn, partition, records, ctx, wait=True, contiguous=until is None
                            )
                            events += len(records)
                        done += len(batch)
                        if progress is not None:
                            progress("events", done, total)
                        if offset >= end:
                            break
                finally:
                    if not reading.done():
                        reading.cancel()
            await move_all_staged(conn)  # no graph to insert into yet: row speed
            applied = time.perf_counter()
            await restore_indexes(conn, progress)
        finally:
            if not conn.broken:  # a broken connection is discarded by the pool anyway
                await conn.execute("RESET synchronous_commit")
                await conn.set_autocommit(False)
    finished = time.perf_counter()
    return ReplayReport(events, finished - started, applied - started, finished - applied)


@dataclass(frozen=True)
class RowDifference:
    """A row present on one side of a comparison and not on the other."""

    table: str
    side: str  # "live only" or "rebuilt only"
    row: str


async def differing_rows(
    conn: AsyncConnection[Any], live: str, rebuilt: str, limit: int = 5
) -> list[RowDifference]:
    """The first rows that differ between two projection schemas, table by table."""
    from spectron.statehash import HASHED_TABLES

    found: list[RowDifference] = []
    for table, order in HASHED_TABLES:
        for side, a, b in (("live only", live, rebuilt), ("rebuilt only", rebuilt, live)):
            query = sql.SQL(
                "SELECT t::text FROM (SELECT * FROM {a}.{t} EXCEPT SELECT * FROM {b}.{t}) t"
                " ORDER BY {order} LIMIT %s"
            ).format(
                a=sql.Identifier(a),
                b=sql.Identifier(b),
                t=sql.Identifier(table),
                order=sql.SQL(order),  # a constant of HASHED_TABLES, never input
            )
            cur = await conn.execute(query, [limit])
            found.extend(RowDifference(table, side, row) for (row,) in await cur.fetchall())
        if found:
            return found
    return found


async def swap_schemas(conn: AsyncConnection[Any], live: str, rebuilt: str) -> None:
    """Make `rebuilt` the live projection in one transaction (blue/green) and drop the old one."""
    retired = f"{live}_retired_{int(time.time())}"
    async with conn.transaction():
        # other processes project into `live` by name: a batch straddling the renames would put
        # its rows in one schema and its position in the other. Batches under way finish first;
        # those begun meanwhile wait, then find the new schema by the same name
        await fence_projection(conn, live)
        # readers resolve tables by name through search_path: they see old, then new, never half
        await conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(live), sql.Identifier(retired)
            )
        )
        await conn.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                sql.Identifier(rebuilt), sql.Identifier(live)
            )
        )
    await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(retired)))
