"""The log port, split by capability: an append-only, partitioned log with Kafka's semantics.

* `EventLog`: append, read a partition from an offset, end offsets, search by time, wait.
* `RawAppender`: append bytes as another producer would (tools and poison tests).
* `ChainVerifier`: check the log's hash chain end to end (spectron.log.chain).
* `TransactionalLog`: an `EventLog` that can append inside a caller's Postgres transaction.

Two adapters implement them: `spectron.log.postgres` (embedded, a table in Postgres: all four)
and `spectron.log.kafka` (aiokafka: all but `TransactionalLog`); `LogBackend` names what both
give. The wiring (spectron.service) picks the adapter once and hands each caller the capability
it needs. Both key events by canonical scope and pick the partition with Kafka's default
partitioner, so a scope's events land in the same partition on either backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiokafka.partitioner import murmur2
from psycopg import AsyncConnection

from spectron.errors import ContentForgotten, MalformedEvent
from spectron.events import Envelope, LoggedEvent, decode_event
from spectron.log.chain import ChainReport
from spectron.records import Appended, RawRecord


class EventLog(Protocol):
    """Append-only partitioned log. Offsets are dense per partition and start at 0."""

    @property
    def partitions(self) -> int:
        """Number of partitions of the log."""
        ...

    async def start(self) -> None:
        """Connect and create the log if missing."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def append(self, events: Sequence[Envelope]) -> list[Appended]:
        """Durably append events (one batch); return their positions once acknowledged."""
        ...

    async def read(self, partition: int, from_offset: int, limit: int = 500) -> list[RawRecord]:
        """Records of one partition from an offset, in order; fewer than `limit` at the end."""
        ...

    async def end_offsets(self) -> dict[int, int]:
        """Per partition, the offset after the last acknowledged record."""
        ...

    async def offset_for_time(self, partition: int, at: datetime) -> int:
        """The first offset whose record was recorded at or after `at` (end offset if none)."""
        ...

    async def wait_for_appends(self, timeout: float) -> None:
        """Return when something may have been appended, or after `timeout` seconds."""
        ...


class RawAppender(Protocol):
    """Appends bytes as another producer would: no validation, no sealing."""

    async def append_raw(self, partition: int, key: bytes | None, value: bytes) -> Appended:
        """Append one record to `partition` as given; its scope is unknown, so every reader owes it."""
        ...


class ChainVerifier(Protocol):
    """Checks the log's tamper-evident hash chain."""

    async def verify_chain(self) -> ChainReport:
        """Walk every partition's chain end to end; records checked, breaks, and what is unchained."""
        ...


class TransactionalLog(EventLog, Protocol):
    """A log in the projections' database: an append can join the caller's transaction."""

    async def append_in_transaction(
        self, conn: AsyncConnection[Any], events: Sequence[Envelope]
    ) -> list[Appended]:
        """Append a batch inside `conn`'s open transaction: it commits or vanishes with it."""
        ...


class LogBackend(EventLog, RawAppender, ChainVerifier, Protocol):
    """What every backend gives: the log the wiring holds, whichever adapter it chose."""


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, positive, modulo), so other producers agree."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def decode_record(record: RawRecord) -> LoggedEvent:
    """Decode a raw record into a logged event; raise MalformedEvent for poison.

    Sealed records must be opened first (spectron.sealing.unseal); a forgotten one raises
    ContentForgotten, which is not poison.
    """
    if record.forgotten:
        raise ContentForgotten(f"the memory at {record.position} is forgotten")
    if record.fault is not None:
        raise MalformedEvent(record.fault)
    try:
        event = decode_event(record.value)
    except MalformedEvent:
        if b'"sealed":{' in record.value:  # a bug, not poison: never dead-letter a sealed event
            raise RuntimeError(f"record at {record.position} decoded before unsealing") from None
        raise
    return LoggedEvent(event, record.position, record.recorded_at)


async def tail(
    log: EventLog, partition: int, from_offset: int, *, follow: bool = True, idle: float = 1.0
) -> AsyncIterator[RawRecord]:
    """Yield a partition's records from an offset; with `follow`, keep waiting for new ones."""
    offset = from_offset
    while True:
        batch = await log.read(partition, offset)
        for record in batch:
            yield record
        if batch:
            offset = batch[-1].position.offset + 1
            continue
        if not follow:
            return
        await log.wait_for_appends(idle)


__all__ = [
    "Appended",
    "ChainReport",
    "ChainVerifier",
    "ContentForgotten",
    "EventLog",
    "LogBackend",
    "MalformedEvent",
    "RawAppender",
    "RawRecord",
    "TransactionalLog",
    "decode_record",
    "partition_for",
    "tail",
]
