"""Dead letters: records the projections could not decode, listed and retried by an operator.

A poison record (another producer's bytes that are not a valid event) is stored by
`projectors.driver.apply_records` in the projection's `dead_letters` table with its position, log
time, the reason and the raw bytes; projection moves on. After an upgrade that makes such bytes
decodable, `retry_dead_letters` applies them with the projectors, in one transaction that also
deletes the dead letter; bytes that still do not decode keep their dead letter, with the new reason.

A revived memory was passed over by the enrichment passes too (they skip what does not decode), so
retry also runs the given enrichers on it and appends their output to the log, where the projection
applies it in log order after the memory, exactly as a replay does. On the embedded log that append
is part of the retry's transaction. On Kafka it follows the commit of the memory's projection and
precedes the deletion of the dead letter: after a crash in between, retrying again is harmless (the
memory is projected once; a second copy of the derived events is ignored, the first one wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, Rollback
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import PROJECTED_CHANNEL, PROJECTION_CONSUMER, PROJECTORS
from projectors.enrichment import Enricher
from spectron.errors import MalformedEvent
from spectron.events import (
    Envelope,
    LogPosition,
    MemoryRecorded,
    ReflectionRecorded,
)
from spectron.log import ContentForgotten, EventLog, RawRecord, TransactionalLog, decode_record
from spectron.sealing import unseal

_COLUMNS = 'consumer, partition, "offset", recorded_at, reason, value'
_DELETE = 'DELETE FROM dead_letters WHERE consumer = %s AND partition = %s AND "offset" = %s'


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record a consumer could not decode: where it sits in the log, why, and its bytes."""

    consumer: str
    partition: int
    offset: int
    recorded_at: datetime
    reason: str
    value: bytes

    @property
    def position(self) -> LogPosition:
        """The record's position in the log."""
        return LogPosition(self.partition, self.offset)

    def preview(self, width: int = 60) -> str:
        """The first bytes of the record, printable (a repr of what does not decode as UTF-8)."""
        head = self.value[:width]
        try:
            text = head.decode()
        except UnicodeDecodeError:
            text = repr(head)[2:-1]
        text = text.encode("unicode_escape").decode() if not text.isprintable() else text
        return text + ("…" if len(self.value) > width else "")


@dataclass
class RetryReport:
    """What a retry did: positions revived (applied, dead letter deleted) and positions kept."""

    revived: list[LogPosition] = field(default_factory=list)
    kept: dict[LogPosition, str] = field(default_factory=dict)
    missing: list[LogPosition] = field(default_factory=list)


def _row(row: Sequence[Any]) -> DeadLetter:
    consumer, partition, offset, recorded_at, reason, value = row
    return DeadLetter(
        str(consumer), int(partition), int(offset), recorded_at, str(reason), bytes(value)
    )


async def count_dead_letters(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> int:
    """How many dead letters the projection holds."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def list_dead_letters(
    pool: AsyncConnectionPool[AsyncConnection[Any]], limit: int = 100
) -> list[DeadLetter]:
    """The first `limit` dead letters in log order (partition, offset)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f'SELECT {_COLUMNS} FROM dead_letters ORDER BY partition, "offset", consumer LIMIT %s',
            [limit],
        )
        return [_row(row) for row in await cur.fetchall()]


async def retry_dead_letters(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    ctx: ProjectionContext,
    positions: Sequence[LogPosition] | None = None,
    *,
    event_log: EventLog | None = None,
    enrichers: Sequence[Enricher] = (),
    transactional_log: TransactionalLog | None = None,
) -> RetryReport:
    """Re-decode dead letters (all, or those at `positions`); apply and delete those that decode.

    Each dead letter is retried in its own transaction, so one failure never undoes another's
    revival. With a log and `enrichers`, a revived memory is enriched as described above: its
    derived events join the retry's transaction through `transactional_log` (embedded), else
    go to `event_log` after the commit (Kafka). If an enricher fails (model down) the dead
    letter is left untouched, to retry later.
    """
    report = RetryReport()
    if positions is None:
        async with pool.connection() as conn:
            cur = await conn.execute(
                'SELECT partition, "offset" FROM dead_letters WHERE consumer = %s'
                ' ORDER BY partition, "offset"',
                [PROJECTION_CONSUMER],
            )
            targets = [LogPosition(int(p), int(o)) for p, o in await cur.fetchall()]
    else:
        targets = list(dict.fromkeys(positions))
    for position in targets:
        async with pool.connection() as conn:
            await _retry_one(conn, ctx, position, report, event_log, transactional_log, enrichers)
    return report


async def _retry_one(
    conn: AsyncConnection[Any],
    ctx: ProjectionContext,
    position: LogPosition,
    report: RetryReport,
    event_log: EventLog | None,
    transactional_log: TransactionalLog | None,
    enrichers: Sequence[Enricher],
) -> None:
    where = [PROJECTION_CONSUMER, position.partition, position.offset]
    derived: list[Envelope] = []
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM dead_letters"
            ' WHERE consumer = %s AND partition = %s AND "offset" = %s FOR UPDATE',
            where,
        )
        row = await cur.fetchone()
        if row is None:
            report.missing.append(position)
            return
        letter = _row(row)
        [raw] = await unseal(conn, [RawRecord(position, letter.recorded_at, None, letter.value)])
        try:
            logged = decode_record(raw)
        except (MalformedEvent, ContentForgotten) as exc:
            await cur.execute(
                "UPDATE dead_letters SET reason = %s"
                ' WHERE consumer = %s AND partition = %s AND "offset" = %s',
                [str(exc), *where],
            )
            report.kept[position] = str(exc)
            return
        for project in PROJECTORS:
            await project(cur, logged, ctx)
        event = logged.event
        appends = event_log is not None or transactional_log is not None
        if appends and isinstance(event, MemoryRecorded | ReflectionRecorded):
            try:
                for enricher in enrichers:
                    derived.extend(await enricher.enrich(conn, [event]))
            except Exception as exc:  # a model down: keep the dead letter for a later retry
                report.kept[position] = f"decodes now, but enrichment failed: {exc!r}"
                raise Rollback() from exc
        await cur.execute("SELECT pg_notify(%s, '')", [PROJECTED_CHANNEL])
        if transactional_log is not None:
            # the derived events join the log in this transaction; the projection applies them
            # after the memory row exists, in log order, exactly as a replay does
            await transactional_log.append_in_transaction(conn, derived)
            derived = []
        if not derived:
            await cur.execute(_DELETE, where)
            report.revived.append(position)
            return
    if position in report.kept:
        return  # rolled back
    # Kafka: the memory row is committed first, so the workers can apply the derived events
    assert event_log is not None
    try:
        await event_log.append(derived)
    except Exception as exc:
        report.kept[position] = f"projected, but appending its enrichment failed: {exc!r}"
        return
    async with conn.transaction():
        await conn.execute(_DELETE, where)
    report.revived.append(position)
