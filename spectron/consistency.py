"""Read-your-writes (DESIGN rule 3): wait, bounded, until projections cover what was appended before."""

from __future__ import annotations

import asyncio
import time

from psycopg_pool import AsyncConnectionPool

from projectors.driver import projection_positions
from spectron.errors import ReadYourWritesTimeout
from spectron.recall import VISIBLE, visibility_params
from spectron.scope import Scope

# Memories visible from the scope, appended before the recall began, whose vector is not projected.
_PENDING = """
SELECT count(*) FROM memories m
WHERE m.embedding IS NULL AND m."offset" < (%(heads)s::bigint[])[m.partition + 1]
"""
_PENDING_VISIBLE = f"{_PENDING} AND {VISIBLE}"


async def wait_for_projections(
    pool: AsyncConnectionPool, heads: dict[int, int], scope: Scope | None, bound: float
) -> int:
    """Wait until records before `heads` are projected and embedded; return how many lack a vector.

    With a scope, only memories visible from it count; with None, all of them.

    Raises ReadYourWritesTimeout when even the memories themselves are not projected by the bound;
    when only their vectors are missing, it returns their count and recall matches them by keyword.
    """
    deadline = time.monotonic() + bound
    heads_array = [heads.get(p, 0) for p in range(max(heads, default=-1) + 1)]
    delay = 0.001
    while True:
        async with pool.connection() as conn:
            positions = await projection_positions(conn)
            behind = {p: h for p, h in heads.items() if positions.get(p, 0) < h}
            if not behind:
                if scope is None:
                    cur = await conn.execute(_PENDING, {"heads": heads_array})
                else:
                    cur = await conn.execute(
                        _PENDING_VISIBLE, {"heads": heads_array, **visibility_params(scope)}
                    )
                row = await cur.fetchone()
                pending = int(row[0]) if row else 0
                if pending == 0 or time.monotonic() >= deadline:
                    return pending
        if behind and time.monotonic() >= deadline:
            lag = sum(h - positions.get(p, 0) for p, h in behind.items())
            raise ReadYourWritesTimeout(
                f"projections are {lag} events behind the log after {bound:.2f}s"
                f" (partitions {sorted(behind)}); retry, raise the bound, or use consistency='eventual'"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
