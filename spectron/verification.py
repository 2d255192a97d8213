"""Tamper evidence as data: verify the log's hash chain (embedded or Kafka) and say what was found."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict, Field

from spectron.errors import SpectronError
from spectron.log import EventLog
from spectron.log.postgres import PostgresEventLog


class ChainBreakInfo(BaseModel):
    """The first record of a partition whose chain does not hold, and why."""

    model_config = ConfigDict(frozen=True)

    partition: int
    offset: int
    reason: str


class LogVerification(BaseModel):
    """The result of checking every partition's hash chain end to end."""

    model_config = ConfigDict(frozen=True)

    verified: bool = Field(description="True when no partition's chain is broken.")
    checked: int = Field(description="Records checked.")
    partitions: int
    breaks: list[ChainBreakInfo]
    unchained: int = Field(description="Kafka: records not linked into the chain yet.")
    heads: dict[str, str] = Field(
        description="Kafka: each partition's head hash (hex); keep a copy to anchor the chain."
    )
    checked_at: datetime


async def verify_log(
    log: EventLog, pool: AsyncConnectionPool[AsyncConnection[Any]]
) -> LogVerification:
    """Check the chain of whichever log this is; reads the whole log, so it takes time on a big one."""
    heads: dict[str, str] = {}
    unchained = 0
    if isinstance(log, PostgresEventLog):
        checked, breaks = await log.verify_chain()
    else:
        from spectron.log.kafka import KafkaEventLog
        from spectron.log.kafka_chain import verify_kafka_chain

        if not isinstance(log, KafkaEventLog):
            raise SpectronError(f"cannot verify a {type(log).__name__}")
        report = await verify_kafka_chain(log, pool)
        checked, breaks, unchained = report.checked, report.breaks, report.unchained
        heads = {str(p): head.last_hash.hex() for p, head in sorted(report.heads.items())}
    return LogVerification(
        verified=not breaks,
        checked=checked,
        partitions=log.partitions,
        breaks=[
            ChainBreakInfo(partition=b.partition, offset=b.offset, reason=b.reason) for b in breaks
        ],
        unchained=unchained,
        heads=heads,
        checked_at=datetime.now(UTC),
    )
