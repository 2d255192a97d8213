"""The machinery's health for people: per partition log end, projected position and lag; memories
awaiting their embedding; dead letters (listed, and retried by an operator).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from spectron.dlq import DeadLetter, RetryReport, count_dead_letters
from spectron.events import LogPosition
from spectron.log import EventLog
from spectron.positions import projection_positions


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PartitionStatus(_Model):
    """One partition: where the log ends and how far the projections have applied it."""

    partition: int
    log_end: int = Field(description="Offset the next record will get.")
    projected: int = Field(description="Next offset the projections will apply.")
    lag: int


class LogStatus(_Model):
    """Lag per partition, memories without their vector yet, and dead letters."""

    partitions: list[PartitionStatus]
    memories: int
    pending_embeddings: int
    dead_letters: int


class DeadLetterInfo(_Model):
    """A record the projections could not decode: where it is, when it was logged, and why."""

    consumer: str
    partition: int
    offset: int
    recorded_at: datetime
    reason: str
    size: int = Field(description="Bytes of the record.")
    preview: str = Field(description="Its first bytes, printable.")


class RetryOutcome(_Model):
    """What a retry did: positions revived, positions still dead (with why), positions unknown."""

    revived: list[LogPosition]
    kept: dict[str, str] = Field(description="'partition:offset' → why it is still dead.")
    missing: list[LogPosition]


async def log_status(pool: AsyncConnectionPool[AsyncConnection[Any]], log: EventLog) -> LogStatus:
    """The status `spectron status` prints, as data."""
    ends = await log.end_offsets()
    async with pool.connection() as conn:
        done = await projection_positions(conn)
        cur = await conn.execute(
            "SELECT count(*) FILTER (WHERE embedding IS NULL), count(*) FROM memories"
        )
        unembedded, memories = await cur.fetchone() or (0, 0)
    partitions = [
        PartitionStatus(
            partition=p, log_end=end, projected=done.get(p, 0), lag=end - done.get(p, 0)
        )
        for p, end in sorted(ends.items())
    ]
    return LogStatus(
        partitions=partitions,
        memories=int(memories),
        pending_embeddings=int(unembedded),
        dead_letters=await count_dead_letters(pool),
    )


def dead_letter_info(letter: DeadLetter) -> DeadLetterInfo:
    """A dead letter without its bytes (size and a printable preview instead)."""
    return DeadLetterInfo(
        consumer=letter.consumer,
        partition=letter.partition,
        offset=letter.offset,
        recorded_at=letter.recorded_at,
        reason=letter.reason,
        size=len(letter.value),
        preview=letter.preview(),
    )


def retry_outcome(report: RetryReport) -> RetryOutcome:
    """A RetryReport as JSON-friendly data."""
    return RetryOutcome(
        revived=list(report.revived),
        kept={f"{p.partition}:{p.offset}": why for p, why in report.kept.items()},
        missing=list(report.missing),
    )
