"""The one place that moves records into projections: effect and position in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from projectors.base import ProjectionContext, Projector
from projectors.entities import project_entities
from projectors.forgetting import project_forgetting
from projectors.recall import project_recall
from spectron.errors import MalformedEvent
from spectron.log import RawRecord, decode_record
from spectron.sealing import unseal

# every projection, in the order each event is applied to them (entities read memories rows)
PROJECTORS: tuple[Projector, ...] = (project_recall, project_entities, project_forgetting)
PROJECTION_CONSUMER = "projections"
PROJECTED_CHANNEL = "spectron_projected"
log = logging.getLogger(__name__)


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
    the same record twice. Sealed records are opened here; those of forgotten memories and poison
    (undecodable) records are passed over, poison being dead-lettered. With
    `wait=False` a partition another process is applying is skipped (None) rather than waited for.
    """
    applied = 0
    # pipeline mode: statements are sent without waiting for each result, so a batch costs one
    # round trip per statement whose result a projector reads (fetch*), not one per statement
    async with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
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
