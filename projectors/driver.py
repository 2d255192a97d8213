"""The one place that moves records into projections: effect and position in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self, overload

from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg.abc import Params, Query, QueryNoTemplate
from psycopg.rows import Row

from projectors.base import ProjectionContext, Projector
from projectors.entities import project_entities
from projectors.forgetting import project_forgetting
from projectors.recall import project_recall
from spectron.errors import MalformedEvent
from spectron.log import RawRecord, decode_record
from spectron.sealing import unseal

if TYPE_CHECKING:
    from psycopg._compat import Template  # t-strings (Python 3.14); only for the overloads

# every projection, in the order each event is applied to them (entities read memories rows)
PROJECTORS: tuple[Projector, ...] = (project_recall, project_entities, project_forgetting)
PROJECTION_CONSUMER = "projections"
PROJECTED_CHANNEL = "spectron_projected"
log = logging.getLogger(__name__)


class PipelinedCursor(AsyncCursor[Row]):
    """The projectors' cursor under the driver's pipeline mode: a result exists once fetched.

    Statements are sent without waiting for their results, so the `rowcount` of a statement
    not fetched yet is unknown (psycopg would say -1, or a count that depends on timing); it
    raises instead. Read results with RETURNING and a fetch, which waits for them.
    """

    _unfetched = False

    @overload
    async def execute(
        self,
        query: QueryNoTemplate,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self: ...

    @overload
    async def execute(
        self, query: Template, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Self: ...

    async def execute(
        self,
        query: Query,
        params: Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        """Send a statement; its result arrives with the next fetch."""
        self._unfetched = True
        if isinstance(query, str | bytes | sql.Composable):
            return await super().execute(query, params, prepare=prepare, binary=binary)
        return await super().execute(query, prepare=prepare, binary=binary)

    async def fetchone(self) -> Row | None:
        """Wait for the results sent so far; the next row of the last statement."""
        row = await super().fetchone()
        self._unfetched = False
        return row

    async def fetchmany(self, size: int = 0) -> list[Row]:
        """Wait for the results sent so far; rows of the last statement."""
        rows = await super().fetchmany(size)
        self._unfetched = False
        return rows

    async def fetchall(self) -> list[Row]:
        """Wait for the results sent so far; every row of the last statement."""
        rows = await super().fetchall()
        self._unfetched = False
        return rows

    @property
    def rowcount(self) -> int:
        """Rows of the last statement, once fetched; raises before (see the class)."""
        if self._unfetched:
            raise RuntimeError(
                "rowcount is unknown until a fetch under pipeline mode: use RETURNING and fetch"
            )
        return super().rowcount


async def apply_records(
    conn: AsyncConnection[Any],
    partition: int,
    records: Sequence[RawRecord],
    ctx: ProjectionContext,
    *,
    wait: bool = False,
) -> int | None:
    """Apply a partition's records past the stored position; return how many, None if busy.

    Records before the stored position are redeliveries and are skipped, so any driver may hand
    the same record twice. Records are applied as given: a driver whose source may skip offsets
    fills the holes first (projectors.faust_app), while a prefix projection may leave them. Sealed records are opened here; those of forgotten memories and poison
    (undecodable) records are passed over, poison being dead-lettered. With
    `wait=False` a partition another process is applying is skipped (None) rather than waited for.
    """
    applied = 0
    # pipeline mode: statements are sent without waiting for each result, so a batch costs one
    # round trip per statement whose result a projector reads (fetch*), not one per statement
    async with conn.pipeline(), conn.transaction(), PipelinedCursor[Any](conn) as cur:
        await cur.execute(
            "INSERT INTO positions (consumer, partition) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [PROJECTION_CONSUMER, partition],
        )
        lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
        await cur.execute(
            f"SELECT next_offset FROM positions WHERE consumer = %s AND partition = %s {lock}",
            [PROJECTION_CONSUMER, partition],
        )
        row = await cur.fetchone()
        if row is None:
            return None
        next_offset = int(row[0])
        fresh = [record for record in records if record.position.offset >= next_offset]
        for record in await unseal(conn, fresh, hold_forget_lock=True):
            if record.forgotten:
                # crypto-shredded: the record stays in the log, its content is gone for good
                next_offset = record.position.offset + 1
                applied += 1
                continue
            try:
                logged = decode_record(record)
            except MalformedEvent as exc:
                log.warning("dead-lettering %s: %s", record.position, exc)
                await cur.execute(
                    "INSERT INTO dead_letters"
                    ' (consumer, partition, "offset", recorded_at, reason, value)'
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [
                        PROJECTION_CONSUMER,
                        partition,
                        record.position.offset,
                        record.recorded_at,
                        str(exc),
                        record.value,
                    ],
                )
            else:
                for project in PROJECTORS:
                    await project(cur, logged, ctx)
            next_offset = record.position.offset + 1
            applied += 1
        if applied:
            await cur.execute(
                "UPDATE positions SET next_offset = %s WHERE consumer = %s AND partition = %s",
                [next_offset, PROJECTION_CONSUMER, partition],
            )
            await cur.execute("SELECT pg_notify(%s, '')", [PROJECTED_CHANNEL])
    return applied


async def projection_positions(conn: AsyncConnection[Any]) -> dict[int, int]:
    """Per partition, the next offset the projections will apply."""
    cur = await conn.execute(
        "SELECT partition, next_offset FROM positions WHERE consumer = %s", [PROJECTION_CONSUMER]
    )
    return {int(p): int(n) for p, n in await cur.fetchall()}
