"""Tamper evidence as data: verify the log's hash chain (embedded or Kafka) and say what was found."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from spectron.log import LogBackend


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


async def verify_log(log: LogBackend) -> LogVerification:
    """Check the log's chain, whichever backend; reads the whole log, so it takes time on a big one."""
    report = await log.verify_chain()
    return LogVerification(
        verified=not report.breaks,
        checked=report.checked,
        partitions=log.partitions,
        breaks=[
            ChainBreakInfo(partition=b.partition, offset=b.offset, reason=b.reason)
            for b in report.breaks
        ],
        unchained=report.unchained,
        # a copy of the heads kept elsewhere anchors the chain
        heads={str(p): head.last_hash.hex() for p, head in sorted(report.heads.items())},
        checked_at=datetime.now(UTC),
    )
