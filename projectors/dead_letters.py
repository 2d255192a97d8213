"""Reviving dead letters: apply records that decode now with the projectors, and enrich them.

After an upgrade that makes a dead letter's bytes decodable (spectron.dlq), `retry_dead_letters`
applies them with the projectors, in one transaction that also deletes the dead letter; bytes that
still do not decode keep their dead letter, with the new reason.

A revived memory was passed over by the enrichment passes too (they skip what does not decode), so
retry also runs the given enrichers on it and appends their output to the log, where the projection
applies it in log order after the memory, exactly as a replay does. On the embedded log that append
is part of the retry's transaction. On Kafka it follows the commit of the memory's projection and
precedes the deletion of the dead letter: after a crash in between, retrying again is harmless (the
memory is projected once; a second copy of the derived events is ignored, the first one wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, Rollback
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import PROJECTORS
from projectors.enrichment import Enricher
from spectron.dlq import (
    RetryReport,
    dead_letter_positions,
    delete_dead_letter,
    lock_dead_letter,
    set_dead_letter_reason,
)
from spectron.errors import ContentForgotten, MalformedEvent
from spectron.events import Envelope, LogPosition, MemoryRecorded, ReflectionRecorded
from spectron.log import EventLog, TransactionalLog, decode_record
from spectron.positions import PROJECTION_CONSUMER, notify_projected
from spectron.records import RawRecord
from spectron.sealing import unseal


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
            targets = await dead_letter_positions(conn, PROJECTION_CONSUMER)
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
    derived: list[Envelope] = []
    async with conn.transaction(), conn.cursor() as cur:
        letter = await lock_dead_letter(cur, PROJECTION_CONSUMER, position)
        if letter is None:
            report.missing.append(position)
            return
        # under the forget lock, as a projection batch: a forget cannot commit in between
        [raw] = await unseal(
            conn,
            [RawRecord(position, letter.recorded_at, None, letter.value)],
            hold_forget_lock=True,
        )
        try:
            logged = decode_record(raw)
        except (MalformedEvent, ContentForgotten) as exc:
            await set_dead_letter_reason(cur, letter, str(exc))
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
        await notify_projected(cur)
        if transactional_log is not None:
            # the derived events join the log in this transaction; the projection applies them
            # after the memory row exists, in log order, exactly as a replay does
            await transactional_log.append_in_transaction(conn, derived)
            derived = []
        if not derived:
            await delete_dead_letter(cur, letter)
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
        await delete_dead_letter(conn, letter)
    report.revived.append(position)
