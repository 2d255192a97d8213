"""Consumer positions: per consumer and partition, the next log offset it will handle.

A consumer stores its position in the same Postgres transaction as its effect, so a crash never
applies a record twice or skips one (DESIGN "the shape"); a driver resumes from it. Two tables:

* `positions`, in the projection schema, for the projections (consumer `projections`): it lives
  beside the rows it describes, so a rebuilt projection starts from zero.
* `spectron_log.consumer_positions` for the enrichment passes (one consumer per pass): their
  output is in the log, which a rebuild keeps.

Every statement on either table is here: the drivers (projectors.driver, projectors.tailer,
projectors.faust_app) move positions through these functions, and readers (read-your-writes,
status, metrics) read them here. A driver that holds a position's row lock for its batch
(`lock_*`) is the only one applying that partition until it commits.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, AsyncCursor, sql

PROJECTION_CONSUMER = "projections"
PROJECTED_CHANNEL = "spectron_projected"  # NOTIFY after a projection batch commits

# a connection, or a cursor of one (the projection driver's pipelined cursor)
Executor = AsyncConnection[Any] | AsyncCursor[Any]


async def projection_positions(conn: Executor) -> dict[int, int]:
    """Per partition, the next offset the projections will apply."""
    cur = await conn.execute(
        "SELECT partition, next_offset FROM positions WHERE consumer = %s", [PROJECTION_CONSUMER]
    )
    return {int(p): int(n) for p, n in await cur.fetchall()}


async def lock_projection_position(cur: Executor, partition: int, *, wait: bool) -> int | None:
    """In the caller's transaction: lock the partition's projection position and return it.

    The row is created at 0 on first use. With `wait=False` a row another transaction holds is
    skipped: None, the partition is being applied elsewhere.
    """
    await cur.execute(
        "INSERT INTO positions (consumer, partition) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [PROJECTION_CONSUMER, partition],
    )
    lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
    found = await cur.execute(
        f"SELECT next_offset FROM positions WHERE consumer = %s AND partition = %s {lock}",
        [PROJECTION_CONSUMER, partition],
    )
    row = await found.fetchone()
    return None if row is None else int(row[0])


async def fence_projection(conn: AsyncConnection[Any], schema: str) -> None:
    """In the caller's transaction: wait for `schema`'s projection batches under way, and hold
    back any new one until the transaction ends (a batch's first statement is on its position)."""
    await conn.execute(
        sql.SQL("LOCK TABLE {}.positions IN EXCLUSIVE MODE").format(sql.Identifier(schema))
    )


async def advance_projection(cur: Executor, partition: int, next_offset: int) -> None:
    """In the batch's transaction: move the locked position, and wake readers on commit."""
    await cur.execute(
        "UPDATE positions SET next_offset = %s WHERE consumer = %s AND partition = %s",
        [next_offset, PROJECTION_CONSUMER, partition],
    )
    await notify_projected(cur)


async def notify_projected(cur: Executor) -> None:
    """Wake readers waiting for the projections when the caller's transaction commits."""
    await cur.execute("SELECT pg_notify(%s, '')", [PROJECTED_CHANNEL])


async def enrichment_positions(conn: AsyncConnection[Any], consumer: str) -> dict[int, int]:
    """Per partition, the next offset an enrichment pass will look at."""
    cur = await conn.execute(
        "SELECT partition, next_offset FROM spectron_log.consumer_positions WHERE consumer = %s",
        [consumer],
    )
    return {int(p): int(n) for p, n in await cur.fetchall()}


async def all_enrichment_positions(conn: AsyncConnection[Any]) -> dict[tuple[str, int], int]:
    """Per enrichment pass and partition, the next offset it will look at."""
    cur = await conn.execute(
        "SELECT consumer, partition, next_offset FROM spectron_log.consumer_positions"
    )
    return {(str(c), int(p)): int(n) for c, p, n in await cur.fetchall()}


async def ensure_enrichment_positions(
    conn: AsyncConnection[Any], consumer: str, partitions: int
) -> None:
    """Create a pass's position rows at 0 for partitions that have none yet."""
    await conn.execute(
        "INSERT INTO spectron_log.consumer_positions (consumer, partition)"
        " SELECT %s, p FROM generate_series(0, %s - 1) p ON CONFLICT DO NOTHING",
        [consumer, partitions],
    )


async def lock_enrichment_position(
    conn: AsyncConnection[Any], consumer: str, partition: int
) -> int | None:
    """In the caller's transaction: lock a pass's position on a partition and return it.

    None when another process holds it (it is running this pass on this partition), or the row
    does not exist (see ensure_enrichment_positions).
    """
    cur = await conn.execute(
        "SELECT next_offset FROM spectron_log.consumer_positions"
        " WHERE consumer = %s AND partition = %s FOR UPDATE SKIP LOCKED",
        [consumer, partition],
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def set_enrichment_position(
    conn: AsyncConnection[Any], consumer: str, partition: int, next_offset: int
) -> None:
    """In the caller's transaction: move a pass's locked position."""
    await conn.execute(
        "UPDATE spectron_log.consumer_positions SET next_offset = %s"
        " WHERE consumer = %s AND partition = %s",
        [next_offset, consumer, partition],
    )


async def enrichment_position(conn: AsyncConnection[Any], consumer: str, partition: int) -> int:
    """A pass's position on one partition (0 before it has one)."""
    cur = await conn.execute(
        "SELECT next_offset FROM spectron_log.consumer_positions"
        " WHERE consumer = %s AND partition = %s",
        [consumer, partition],
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def raise_enrichment_position(
    conn: AsyncConnection[Any], consumer: str, partition: int, next_offset: int
) -> None:
    """Move a pass's position forward to `next_offset`, never back (a redelivery cannot undo it)."""
    await conn.execute(
        "INSERT INTO spectron_log.consumer_positions AS c"
        " (consumer, partition, next_offset) VALUES (%s, %s, %s)"
        " ON CONFLICT (consumer, partition) DO UPDATE"
        " SET next_offset = greatest(c.next_offset, excluded.next_offset)",
        [consumer, partition, next_offset],
    )


__all__ = [
    "PROJECTED_CHANNEL",
    "PROJECTION_CONSUMER",
    "advance_projection",
    "all_enrichment_positions",
    "enrichment_position",
    "enrichment_positions",
    "ensure_enrichment_positions",
    "fence_projection",
    "lock_enrichment_position",
    "lock_projection_position",
    "notify_projected",
    "projection_positions",
    "raise_enrichment_position",
    "set_enrichment_position",
]
