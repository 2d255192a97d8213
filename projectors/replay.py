"""Rebuild: drop the projection schema and replay the whole log into it. No embedder, no extractor."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import apply_records
from spectron.db import PROJECTION_MIGRATIONS
from spectron.log import EventLog
from spectron.migrations import migrate

BATCH = 1000


@dataclass(frozen=True)
class ReplayReport:
    """How a replay went."""

    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Replay throughput."""
        return self.events / self.seconds if self.seconds > 0 else float("inf")


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


async def replay(
    pool: AsyncConnectionPool,
    event_log: EventLog,
    ctx: ProjectionContext,
    until: datetime | None = None,
) -> ReplayReport:
    """Apply every record of every partition from offset 0, in batches.

    With `until`, only the records logged at or before that time.
    """
    started = time.perf_counter()
    events = 0
    ends = await event_log.end_offsets()
    for partition, end in sorted(ends.items()):
        offset = 0
        while offset < end:
            batch = await event_log.read(partition, offset, BATCH)
            if not batch:
                break
            offset = batch[-1].position.offset + 1
            # the prefix at a time is every record logged by then; on Kafka, producer clocks may
            # interleave slightly, so do not stop at the first later record
            records = [r for r in batch if until is None or r.recorded_at <= until]
            if records:
                async with pool.connection() as conn:
                    await apply_records(conn, partition, records, ctx, wait=True)
                events += len(records)
    return ReplayReport(events, time.perf_counter() - started)


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
