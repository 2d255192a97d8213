"""The embedded EventLog: a durable table in Postgres with Kafka's semantics.

Appenders lock the partition's row, number their records from `next_offset` and commit, so offsets
are dense and commit in offset order (a reader never sees a gap that fills later). The commit is
synchronous and fsynced: an acknowledged append survives kill -9. Tailers wake on NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from spectron.db import read_snapshot
from spectron.errors import LogUnavailable
from spectron.events import Envelope, LogPosition, partition_key
from spectron.log import partition_for
from spectron.log.chain import (
    ChainedRecord,
    ChainHead,
    ChainReport,
    record_hash,
    verify_partition,
)
from spectron.log.owed import floor_heads, record_heads, written_heads
from spectron.records import Appended, RawRecord
from spectron.sealing import seal_events

CHANNEL = "spectron_log"
# an append waiting for the group commit: its events, and where its positions are delivered
_Request = tuple[Sequence[Envelope], asyncio.Future[list[Appended]]]
GROUP_MAX = 64  # requests per group commit: bounds a transaction's size and lock time
log = logging.getLogger(__name__)


class PostgresEventLog:
    """Log adapter over the `spectron_log` schema of a Postgres database (a TransactionalLog)."""

    def __init__(self, pool: AsyncConnectionPool, uri: str, partitions: int = 8) -> None:
        self._pool = pool
        self._uri = uri
        self._partitions = partitions
        self._listener: AsyncConnection[Any] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        # appends seen so far, and what each waiting task had seen when it last returned: a task
        # that read the log and then waits returns at once if a NOTIFY arrived in between
        self._generation = 0
        self._seen: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = weakref.WeakKeyDictionary()
        self._wakeup = asyncio.Event()  # replaced after each NOTIFY; waiters hold the current one
        self._listening = asyncio.Lock()
        # group commit: appends that arrive while a commit is in flight share the next one
        self._queued: list[_Request] = []
        self._committer: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> int:
        """Number of partitions (fixed when the log was first created)."""
        return self._partitions

    async def start(self) -> None:
        """Create the partitions on first use; adopt the existing count afterwards."""
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO spectron_log.partitions (partition)"
                " SELECT generate_series(0, %s - 1)"
                " WHERE NOT EXISTS (SELECT 1 FROM spectron_log.partitions)"
                " ON CONFLICT DO NOTHING",
                [self._partitions],
            )
            cur = await conn.execute("SELECT count(*) FROM spectron_log.partitions")
            row = await cur.fetchone()
            assert row is not None
            self._partitions = int(row[0])

    async def close(self) -> None:
        """Let queued appends commit, then stop listening for appends."""
        if self._committer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._committer
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listen_task
            self._listen_task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def append(self, events: Sequence[Envelope]) -> list[Appended]:
        """Append a batch atomically, sharing a group commit with concurrent appends."""
        if not events:
            return []
        done: asyncio.Future[list[Appended]] = asyncio.get_running_loop().create_future()
        self._queued.append((events, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await asyncio.shield(done)  # a cancelled caller must not cancel the others' commit

    async def append_in_transaction(
        self, conn: AsyncConnection[Any], events: Sequence[Envelope]
    ) -> list[Appended]:
        """Append a batch inside the caller's open transaction: it commits or vanishes with it."""
        if not events:
            return []
        return await self._append(conn, events)

    async def _commit_queued(self) -> None:
        """Commit queued appends, as many per transaction as arrived meanwhile (one fsync each)."""
        batch: list[_Request] = []
        try:
            while self._queued:
                batch, self._queued = self._queued[:GROUP_MAX], self._queued[GROUP_MAX:]
                await self._commit_batch(batch)
        except BaseException:
            # cancelled (shutdown): nobody may wait forever for an answer
            for _, done in batch + self._queued:
                _settle(done, LogUnavailable("the event log closed before the append committed"))
            self._queued = []
            raise

    async def _commit_batch(self, batch: list[_Request]) -> None:
        """One transaction for the batch; if it fails, each request alone (one bad one fails alone)."""
        try:
            async with self._pool.connection() as own, own.transaction():
                appended = await self._append(own, [e for events, _ in batch for e in events])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for events, done in batch:
                try:
                    async with self._pool.connection() as own, own.transaction():
                        _settle(done, await self._append(own, events))
                except Exception as alone:
                    _settle(done, alone)
            return
        start = 0
        for events, done in batch:
            _settle(done, appended[start : start + len(events)])
            start += len(events)

    async def _append(
        self, conn: AsyncConnection[Any], events: Sequence[Envelope]
    ) -> list[Appended]:
        """Round trips: the keys, each partition's head (usually one), the chained records."""
        by_partition: dict[int, list[int]] = defaultdict(list)
        keys = [partition_key(event) for event in events]
        for index, key in enumerate(keys):
            by_partition[partition_for(key, self._partitions)].append(index)
        values = await seal_events(conn, events)
        result: list[Appended | None] = [None] * len(events)
        rows: list[_Row] = []
        # lock partitions in a fixed order so concurrent multi-partition batches cannot deadlock
        for partition, indexes in sorted(by_partition.items()):
            first, recorded_at = await _reserve_and_chain(
                conn, partition, [(keys[i], values[i]) for i in indexes], rows
            )
            for n, index in enumerate(indexes):
                result[index] = Appended(LogPosition(partition, first + n), recorded_at)
        await _write(conn, rows)
        acks = [appended for appended in result if appended is not None]
        await record_heads(conn, written_heads(events, acks))
        return acks

    async def append_raw(self, partition: int, key: bytes | None, value: bytes) -> Appended:
        """Append bytes as another producer would (no validation): for tools and poison tests."""
        async with self._pool.connection() as conn, conn.transaction():
            rows: list[_Row] = []
            first, recorded_at = await _reserve_and_chain(conn, partition, [(key, value)], rows)
            await _write(conn, rows)
            appended = Appended(LogPosition(partition, first), recorded_at)
            await record_heads(conn, floor_heads([appended]))  # its scope is unknown: owed by all
        return appended

    async def verify_chain(self) -> ChainReport:
        """Check every partition's hash chain end to end (each row holds its two hashes)."""
        report = ChainReport()
        for partition in range(self._partitions):
            # one snapshot: the recorded end and the records as of the same appends
            async with self._pool.connection() as conn, read_snapshot(conn):
                cur = await conn.execute(
                    "SELECT next_offset, last_hash FROM spectron_log.partitions"
                    " WHERE partition = %s",
                    [partition],
                )
                end = await cur.fetchone()
                head = ChainHead() if end is None else ChainHead(int(end[0]), bytes(end[1]))
                async with conn.cursor(name=f"verify_{partition}") as cur:
                    await cur.execute(
                        'SELECT "offset", recorded_at, key, value, prev_hash, hash'
                        ' FROM spectron_log.events WHERE partition = %s ORDER BY "offset"',
                        [partition],
                    )
                    records = [
                        ChainedRecord(
                            int(o),
                            at,
                            None if k is None else bytes(k),
                            bytes(v),
                            bytes(p or b""),
                            bytes(h or b""),
                        )
                        async for o, at, k, v, p, h in cur
                    ]
            count, found = verify_partition(partition, records, head)
            report.heads[partition] = head
            report.checked += count
            if found is not None:
                report.breaks.append(found)
        return report

    async def read(self, partition: int, from_offset: int, limit: int = 500) -> list[RawRecord]:
        """Records of one partition from an offset, in offset order."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                'SELECT "offset", recorded_at, key, value FROM spectron_log.events'
                ' WHERE partition = %s AND "offset" >= %s ORDER BY "offset" LIMIT %s',
                [partition, from_offset, limit],
                binary=True,  # values arrive as raw bytes, not hex text to encode and decode
            )
            rows = await cur.fetchall()
        return [
            RawRecord(LogPosition(partition, int(offset)), recorded_at, key, bytes(value))
            for offset, recorded_at, key, value in rows
        ]

    async def end_offsets(self) -> dict[int, int]:
        """Per partition, the next offset to be assigned (exact: appends are transactional)."""
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT partition, next_offset FROM spectron_log.partitions")
            return {int(p): int(n) for p, n in await cur.fetchall()}

    async def offset_for_time(self, partition: int, at: datetime) -> int:
        """First offset recorded at or after `at`; the end offset when there is none."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                'SELECT coalesce(min("offset"), (SELECT next_offset FROM spectron_log.partitions'
                " WHERE partition = %s)) FROM spectron_log.events"
                " WHERE partition = %s AND recorded_at >= %s",
                [partition, partition, at],
            )
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def wait_for_appends(self, timeout: float) -> None:
        """Wake on the next append NOTIFY (any process), or after `timeout` seconds."""
        if self._listen_task is None or self._listen_task.done():
            try:
                await self._start_listening()
            except psycopg.OperationalError as exc:
                # the database is restarting: poll until it is back
                log.info("cannot listen for appends (%s); polling", exc)
                await asyncio.sleep(timeout)
                return
        task = asyncio.current_task()
        assert task is not None
        if self._seen.get(task, -1) == self._generation:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
        self._seen[task] = self._generation

    async def _start_listening(self) -> None:
        # every tailer of this process waits here at once: one of them (re)connects
        async with self._listening:
            if self._listen_task is not None and not self._listen_task.done():
                return
            if self._listener is not None:
                await self._listener.close()
            self._listener = await AsyncConnection.connect(self._uri, autocommit=True)
            await self._listener.execute(f"LISTEN {CHANNEL}")
            self._listen_task = asyncio.create_task(self._listen(self._listener))

    async def _listen(self, conn: AsyncConnection[Any]) -> None:
        try:
            async for _ in conn.notifies():
                self._wake()
        except psycopg.OperationalError as exc:
            log.info(
                "append listener lost its connection (%s); it reconnects on the next wait", exc
            )
        finally:
            self._wake()  # whatever happened meanwhile, waiters must look at the log again

    def _wake(self) -> None:
        self._generation += 1
        self._wakeup.set()
        self._wakeup = asyncio.Event()


def _settle(done: asyncio.Future[list[Appended]], outcome: list[Appended] | Exception) -> None:
    if done.done():
        return
    if isinstance(outcome, Exception):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)


_Row = tuple[int, int, datetime, bytes | None, bytes, bytes, bytes]


async def _reserve_and_chain(
    conn: AsyncConnection[Any],
    partition: int,
    values: Sequence[tuple[bytes | None, bytes]],
    rows: list[_Row],
) -> tuple[int, datetime]:
    """Take the partition's row lock and offsets, then number and chain its records into `rows`."""
    cur = await conn.execute(
        "UPDATE spectron_log.partitions"
        " SET next_offset = next_offset + %s,"
        "     last_time = greatest(clock_timestamp(), last_time)"
        " WHERE partition = %s RETURNING next_offset - %s, last_time, last_hash",
        [len(values), partition, len(values)],
    )
    row = await cur.fetchone()
    assert row is not None, f"partition {partition} missing"
    first, recorded_at, prev = int(row[0]), row[1], bytes(row[2])
    for n, (key, value) in enumerate(values):
        digest = record_hash(prev, partition, first + n, recorded_at, key, value)
        rows.append((partition, first + n, recorded_at, key, value, prev, digest))
        prev = digest
    return first, recorded_at


async def _write(conn: AsyncConnection[Any], rows: Sequence[_Row]) -> None:
    """One statement: insert the chained records, move each partition's last hash, wake tailers."""
    last = {row[0]: row[6] for row in rows}  # rows are in offset order within a partition
    # VALUES lists rather than arrays: scalar parameters skip array text-escaping on the hot path
    records = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    hashes = ", ".join(["(%s, %s)"] * len(last))
    query = (
        "WITH inserted AS ("
        "  INSERT INTO spectron_log.events"
        '   (partition, "offset", recorded_at, key, value, prev_hash, hash)'
        f"  VALUES {records}"
        "), moved AS ("
        "  UPDATE spectron_log.partitions p SET last_hash = u.hash"
        f"  FROM (VALUES {hashes}) AS u(partition, hash)"
        "  WHERE p.partition = u.partition"
        ") SELECT pg_notify(%s, '')"
    )
    params = [value for row in rows for value in row]
    params += [value for item in last.items() for value in item]
    await conn.execute(query.encode(), [*params, CHANNEL])
