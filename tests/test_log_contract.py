"""The log port's contract (spectron.log), run against both adapters: embedded Postgres and Kafka.

Every test takes `under_test`, a started log of 4 partitions on a fresh database (and, for Kafka, a
fresh topic on the run's Tansu broker). What only one adapter can do is tested where it lives:
Kafka's broker and workers in test_kafka.py, tamper evidence in test_log_chain.py and
test_kafka_chain.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from psycopg import Rollback
from psycopg_pool import AsyncConnectionPool

from spectron.db import open_pool, prepare_database
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import MemoryRecorded, MemoryRecordedPayload, new_event_fields, partition_key
from spectron.log import LogBackend, decode_record, partition_for, tail
from spectron.log.kafka import KafkaEventLog
from spectron.log.postgres import PostgresEventLog
from tests.kafka_support import unique_topic
from tests.log_support import opened

PARTITIONS = 4


def memory(scope: dict[str, str], content: str) -> MemoryRecorded:
    """A fresh MemoryRecorded event."""
    return MemoryRecorded(
        **new_event_fields(scope, "test:contract"),
        payload=MemoryRecordedPayload(content=content),
    )


@dataclass
class LogUnderTest:
    """A started log, the database beside it, and how another process would open the same log."""

    log: LogBackend
    pool: AsyncConnectionPool[Any]
    reopen: Callable[[int], LogBackend]  # a second adapter on the same log, asking for n partitions


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def under_test(
    request: pytest.FixtureRequest, database: str, hashing: HashingEmbedder
) -> AsyncIterator[LogUnderTest]:
    """A started log of each backend on a fresh database (and topic)."""
    await prepare_database(database, "spectron", hashing.dim)
    pool = await open_pool(database, "spectron")
    reopen: Callable[[int], LogBackend]
    if request.param == "embedded":

        def reopen(partitions: int) -> LogBackend:
            return PostgresEventLog(pool, database, partitions)

    else:
        broker: str = request.getfixturevalue("kafka_broker")
        topic = unique_topic("contract")

        def reopen(partitions: int) -> LogBackend:
            return KafkaEventLog(broker, topic, partitions, pool)

    event_log = reopen(PARTITIONS)
    await event_log.start()
    try:
        yield LogUnderTest(event_log, pool, reopen)
    finally:
        await event_log.close()
        await pool.close()


async def test_append_gives_dense_positions_and_reads_back(under_test: LogUnderTest) -> None:
    event_log = under_test.log
    scopes = [{"org": "acme", "team": f"t{i}"} for i in range(7)]
    first = [memory(scopes[i % 7], f"first batch {i}") for i in range(21)]
    second = [memory(scopes[i % 7], f"second batch {i}") for i in range(14)]
    acked = await event_log.append(first) + await event_log.append(second)

    per_partition: dict[int, list[int]] = defaultdict(list)
    for event, appended in zip(first + second, acked, strict=True):
        assert appended.position.partition == partition_for(partition_key(event), PARTITIONS)
        per_partition[appended.position.partition].append(appended.position.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets)))  # dense, from 0, in append order

    by_position = {a.position: (e, a) for e, a in zip(first + second, acked, strict=True)}
    for partition, offsets in per_partition.items():
        records = await event_log.read(partition, 0)
        assert [r.position.offset for r in records] == offsets
        for raw, record in zip(records, await opened(under_test.pool, records), strict=True):
            event, appended = by_position[record.position]
            assert decode_record(record).event == event
            assert event.payload.content.encode() not in raw.value  # sealed in the log
            assert record.key == partition_key(event)
            assert record.recorded_at == appended.recorded_at
        tail_records = await event_log.read(partition, 2, limit=2)
        assert [r.position.offset for r in tail_records] == offsets[2:4]

    ends = await event_log.end_offsets()
    assert set(ends) == set(range(PARTITIONS))
    for partition, offsets in per_partition.items():
        assert ends[partition] >= offsets[-1] + 1
        started = time.monotonic()
        assert await event_log.read(partition, ends[partition]) == []
        assert time.monotonic() - started < 1.5  # an empty read answers promptly


async def test_end_offsets_cover_every_acknowledged_record(under_test: LogUnderTest) -> None:
    # a broker's own end offset may lag the last batch; the acknowledged offsets may not
    scope = {"org": "acme", "team": "ends"}
    for size in (5, 1, 9):
        acked = await under_test.log.append([memory(scope, f"n{i}") for i in range(size)])
        ends = await under_test.log.end_offsets()
        assert ends[acked[-1].position.partition] == acked[-1].position.offset + 1


async def test_offset_for_time(under_test: LogUnderTest) -> None:
    event_log = under_test.log
    scope = {"org": "acme", "team": "clock"}
    early = await event_log.append([memory(scope, f"early {i}") for i in range(3)])
    await asyncio.sleep(0.02)  # the late batch gets a later log time (Kafka stamps milliseconds)
    late = await event_log.append([memory(scope, f"late {i}") for i in range(3)])
    partition = early[0].position.partition
    at = late[0].recorded_at
    assert at > early[-1].recorded_at
    assert await event_log.offset_for_time(partition, at) == late[0].position.offset
    assert await event_log.offset_for_time(partition, at - timedelta(microseconds=1)) == 3
    assert await event_log.offset_for_time(partition, early[0].recorded_at - timedelta(days=1)) == 0
    end = (await event_log.end_offsets())[partition]
    assert await event_log.offset_for_time(partition, at + timedelta(days=1)) == end == 6


async def test_append_raw_and_partition_count_adoption(under_test: LogUnderTest) -> None:
    appended = await under_test.log.append_raw(2, b"k", b"not json")
    again = await under_test.log.append_raw(2, None, b"{}")
    assert (appended.position.partition, again.position.offset) == (2, appended.position.offset + 1)
    [record] = await under_test.log.read(2, appended.position.offset, limit=1)
    assert (record.key, record.value) == (b"k", b"not json")

    # a second process configured for 8 partitions adopts the log's real 4
    other = under_test.reopen(8)
    await other.start()
    try:
        assert other.partitions == PARTITIONS
        assert (await other.end_offsets())[2] == again.position.offset + 1
    finally:
        await other.close()


async def test_tail_follows_a_partition_from_an_offset(under_test: LogUnderTest) -> None:
    event_log = under_test.log
    scope = {"org": "acme", "team": "tail"}
    acked = await event_log.append([memory(scope, f"before {i}") for i in range(3)])
    partition = acked[0].position.partition

    async def first(n: int) -> list[int]:
        offsets: list[int] = []
        async for record in tail(event_log, partition, 1, idle=0.1):
            offsets.append(record.position.offset)
            if len(offsets) == n:
                return offsets
        return offsets

    following = asyncio.create_task(first(3))
    await event_log.append([memory(scope, "after")])  # reaches a tailer already waiting, or not
    assert await asyncio.wait_for(following, 60) == [1, 2, 3]
    drained = [r.position.offset async for r in tail(event_log, partition, 0, follow=False)]
    assert drained == [0, 1, 2, 3]


async def test_untouched_chain_verifies(under_test: LogUnderTest) -> None:
    event_log = under_test.log
    await event_log.append([memory({"org": "acme", "team": f"t{i}"}, f"n{i}") for i in range(9)])
    await event_log.append_raw(1, None, b"foreign bytes")
    report = await event_log.verify_chain()
    assert report.breaks == []
    # every record is checked, or (Kafka, no chainer running here) reported as not chained yet
    assert report.checked + report.unchained == 10
    assert sum((await event_log.end_offsets()).values()) == 10


@pytest.mark.parametrize("under_test", ["embedded"], indirect=True)  # the one TransactionalLog
async def test_transactional_append_commits_and_rolls_back_with_the_caller(
    under_test: LogUnderTest,
) -> None:
    event_log, pool = under_test.log, under_test.pool
    assert isinstance(event_log, PostgresEventLog)
    scope = {"org": "acme", "team": "tx"}
    async with pool.connection() as conn:
        async with conn.transaction():
            await event_log.append_in_transaction(conn, [memory(scope, "rolled back")])
            raise Rollback()
    assert sum((await event_log.end_offsets()).values()) == 0  # no offset was used up
    async with pool.connection() as conn, conn.transaction():
        [kept] = await event_log.append_in_transaction(conn, [memory(scope, "committed")])
    assert kept.position.offset == 0
    [record] = await opened(pool, await event_log.read(kept.position.partition, 0))
    event = decode_record(record).event
    assert isinstance(event, MemoryRecorded) and event.payload.content == "committed"
    assert (await event_log.verify_chain()).breaks == []
