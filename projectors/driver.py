"""The one place that moves records into projections: effect and position in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self, overload

import psycopg
from psycopg import AsyncConnection, AsyncCursor, AsyncRawCursor, sql
from psycopg.abc import Params, Query, QueryNoTemplate
from psycopg.rows import Row

from projectors.base import ProjectionContext, Projector
from projectors.coalesce import coalesced, without_result
from projectors.entities import project_entities
from projectors.forgetting import project_forgetting
from projectors.recall import project_recall
from spectron.errors import MalformedEvent
from spectron.log import decode_record
from spectron.positions import PROJECTION_CONSUMER, advance_projection, lock_projection_position
from spectron.records import RawRecord
from spectron.sealing import unseal

if TYPE_CHECKING:
    from psycopg._compat import Template  # t-strings (Python 3.14); only for the overloads

# every projection, in the order each event is applied to them (entities read memories rows)
PROJECTORS: tuple[Projector, ...] = (project_recall, project_entities, project_forgetting)
log = logging.getLogger(__name__)


class PipelinedCursor(AsyncCursor[Row]):
    """The projectors' cursor under the driver's pipeline mode: each statement on a cursor of its own.

    Under pipeline mode psycopg hands a result to the cursor that sent its statement whenever it
    arrives, which may be while a later statement is being sent: on one shared cursor, a fetch
    meant for the later statement would then read the earlier one's result (an error, or worse,
    wrong rows). Here every statement runs on a fresh cursor and a fetch reads only the last
    one's, waiting for it, so a result cannot reach the wrong fetch whatever the timing. A
    statement's `rowcount` is unknown until fetched (psycopg would say -1, or a count that
    depends on timing), so it raises before: read results with RETURNING and a fetch.

    A statement that returns nothing (INSERT, UPDATE or DELETE without RETURNING, with
    positional parameters) waits in the cursor: a run of the same statement text is then sent
    at once, coalesced as projectors.coalesce says. Waiting statements are sent, in order,
    before any other statement and before a fetch, so the server runs the projectors'
    statements in the order they were issued; `flush` sends them at the end of a batch.
    """

    _statement: AsyncCursor[Row] | None = None
    _unfetched = False
    _waiting_query: str | None = None
    _waiting: list[Sequence[Any]] | None = None

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
        """Send a statement on a cursor of its own; its result arrives with the next fetch."""
        if (
            isinstance(query, str)
            and isinstance(params, list | tuple)
            and prepare is None
            and binary is None
            and without_result(query)
        ):
            if query != self._waiting_query:
                await self.flush()
                self._waiting_query, self._waiting = query, []
            assert self._waiting is not None
            self._waiting.append(params)
            self._unfetched = True
            return self
        await self.flush()
        statement = AsyncCursor[Row](self.connection, row_factory=self.row_factory)
        self._statement, self._unfetched = statement, True
        if isinstance(query, str | bytes | sql.Composable):
            await statement.execute(query, params, prepare=prepare, binary=binary)
        else:
            await statement.execute(query, prepare=prepare, binary=binary)
        return self

    async def executemany(
        self, query: Query, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        """Send a statement once per parameter set, on a cursor of its own."""
        await self.flush()
        statement = AsyncCursor[Row](self.connection, row_factory=self.row_factory)
        self._statement, self._unfetched = statement, True
        await statement.executemany(query, params_seq, returning=returning)

    async def flush(self) -> None:
        """Send the statements waiting in this cursor (see the class), in order."""
        query, run = self._waiting_query, self._waiting
        if query is None or not run:
            return
        self._waiting_query, self._waiting = None, None
        statement = AsyncCursor[Row](self.connection, row_factory=self.row_factory)
        self._statement = statement
        if len(run) == 1:
            await statement.execute(query, run[0])
            return
        merged = coalesced(query, run)
        if merged is None:
            await statement.executemany(query, run)
            return
        raw = AsyncRawCursor[Row](self.connection, row_factory=self.row_factory)
        self._statement = raw
        for text, values in merged:
            await raw.execute(text, values)

    def _last(self) -> AsyncCursor[Row]:
        if self._statement is None:
            raise psycopg.ProgrammingError("no statement was executed on this cursor")
        return self._statement

    async def fetchone(self) -> Row | None:
        """Wait for the last statement's result; its next row."""
        await self.flush()
        row = await self._last().fetchone()
        self._unfetched = False
        return row

    async def fetchmany(self, size: int = 0) -> list[Row]:
        """Wait for the last statement's result; its next rows."""
        await self.flush()
        rows = await self._last().fetchmany(size)
        self._unfetched = False
        return rows

    async def fetchall(self) -> list[Row]:
        """Wait for the last statement's result; all its remaining rows."""
        await self.flush()
        rows = await self._last().fetchall()
        self._unfetched = False
        return rows

    async def __anext__(self) -> Row:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration("no more records to return")
        return row

    @property
    def rowcount(self) -> int:
        """Rows of the last statement, once fetched; raises before (see the class)."""
        if self._unfetched:
            raise RuntimeError(
                "rowcount is unknown until a fetch under pipeline mode: use RETURNING and fetch"
            )
        return self._last().rowcount if self._statement is not None else -1


class ProjectionGap(Exception):
    """A batch starts past the stored position: the records between were never applied here.

    A driver reads its batch from the position it saw before taking the position's lock; by then
    the position may have moved back (a replay's switch put a rebuilt projection in place, or a
    rebuild reset it). Nothing is applied: the driver reads again from the stored position.
    """

    def __init__(self, partition: int, position: int, first: int) -> None:
        super().__init__(
            f"partition {partition}: the batch starts at {first}, the projection at {position}"
        )
        self.partition, self.position, self.first = partition, position, first


async def apply_records(
    conn: AsyncConnection[Any],
    partition: int,
    records: Sequence[RawRecord],
    ctx: ProjectionContext,
    *,
    wait: bool = False,
    contiguous: bool = True,
) -> int | None:
    """Apply a partition's records past the stored position; return how many, None if busy.

    Records before the stored position are redeliveries and are skipped, so any driver may hand
    the same record twice. A batch must start at the stored position (ProjectionGap otherwise)
    and is applied as given: a driver whose source may skip offsets fills the holes first
    (projectors.faust_app). Only a prefix projection (`contiguous=False`: records up to a time,
    or of one scope) may leave holes. Sealed records are opened here; those of forgotten memories
    and poison (undecodable) records are passed over, poison being dead-lettered. With
    `wait=False` a partition another process is applying is skipped (None) rather than waited for.
    """
    applied = 0
    # pipeline mode: statements are sent without waiting for each result, so a batch costs one
    # round trip per statement whose result a projector reads (fetch*), not one per statement
    async with conn.pipeline(), conn.transaction(), PipelinedCursor[Any](conn) as cur:
        # a batch need not wait for its own fsync: effect and position commit or vanish together,
        # and one a crash loses is applied again from the log; waiting for the disk here only
        # makes readers wait longer (any later synchronous commit flushes this one first)
        await cur.execute("SET LOCAL synchronous_commit TO off")
        next_offset = await lock_projection_position(cur, partition, wait=wait)
        if next_offset is None:
            return None
        fresh = [record for record in records if record.position.offset >= next_offset]
        if contiguous and fresh and fresh[0].position.offset > next_offset:
            raise ProjectionGap(partition, next_offset, fresh[0].position.offset)
        await cur.flush()  # unseal uses the connection: what the cursor holds goes first
        opened = await unseal(conn, fresh, hold_forget_lock=True)
        for stored, record in zip(fresh, opened, strict=True):
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
                        # as logged (sealed): a forget makes the bytes unreadable there too
                        stored.value,
                    ],
                )
            else:
                for project in PROJECTORS:
                    await project(cur, logged, ctx)
            next_offset = record.position.offset + 1
            applied += 1
        if applied:
            await advance_projection(cur, partition, next_offset)
        await cur.flush()
    return applied
