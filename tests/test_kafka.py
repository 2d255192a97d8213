"""The Kafka backend against a real (Tansu) broker: the EventLog contract, and faust workers projecting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from spectron.db import open_pool, prepare_database
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import (
    MemoryRecorded,
    MemoryRecordedPayload,
    encode_event,
    new_event_fields,
    partition_key,
)
from spectron.log import partition_for
from spectron.log.kafka import KafkaEventLog

pytestmark = pytest.mark.kafka


def unique_topic(name: str) -> str:
    """A topic no other test uses (the broker lives for the whole run)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def memory(scope: dict[str, str], content: str) -> MemoryRecorded:
    return MemoryRecorded(
        **new_event_fields(scope, "test:kafka"),
        payload=MemoryRecordedPayload(content=content),
    )


@pytest.fixture
async def kafka_log(
    kafka_broker: str, database: str, hashing: HashingEmbedder
) -> AsyncIterator[KafkaEventLog]:
    """A started KafkaEventLog on a fresh 4-partition topic and a fresh database."""
    await prepare_database(database, "spectron", hashing.dim)
    pool = await open_pool(database, "spectron")
    event_log = KafkaEventLog(kafka_broker, unique_topic("contract"), 4, pool)
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()
        await pool.close()


async def test_append_gives_dense_positions_and_reads_back(kafka_log: KafkaEventLog) -> None:
    scopes = [{"org": "acme", "team": f"t{i}"} for i in range(7)]
    first = [memory(scopes[i % 7], f"first batch {i}") for i in range(21)]
    second = [memory(scopes[i % 7], f"second batch {i}") for i in range(14)]
    acked = await kafka_log.append(first) + await kafka_log.append(second)

    per_partition: dict[int, list[int]] = defaultdict(list)
    for event, appended in zip(first + second, acked, strict=True):
        assert appended.position.partition == partition_for(partition_key(event), 4)
        per_partition[appended.position.partition].append(appended.position.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets)))  # dense, from 0, in append order

    by_position = {a.position: (e, a) for e, a in zip(first + second, acked, strict=True)}
    for partition, offsets in per_partition.items():
        records = await kafka_log.read(partition, 0)
        assert [r.position.offset for r in records] == offsets
        for record in records:
            event, appended = by_position[record.position]
            assert record.value == encode_event(event)
            assert record.key == partition_key(event)
            assert record.recorded_at == appended.recorded_at
        tail = await kafka_log.read(partition, 2, limit=2)
        assert [r.position.offset for r in tail] == offsets[2:4]

    ends = await kafka_log.end_offsets()
    assert set(ends) == {0, 1, 2, 3}
    for partition, offsets in per_partition.items():
        assert ends[partition] >= offsets[-1] + 1
        started = time.monotonic()
        assert await kafka_log.read(partition, ends[partition]) == []
        assert time.monotonic() - started < 1.5  # an empty read answers promptly


async def test_end_offsets_cover_every_acknowledged_record(kafka_log: KafkaEventLog) -> None:
    # the broker's own end offset may lag the last batch; the acknowledged offsets may not
    scope = {"org": "acme", "team": "ends"}
    for size in (5, 1, 9):
        acked = await kafka_log.append([memory(scope, f"n{i}") for i in range(size)])
        ends = await kafka_log.end_offsets()
        assert ends[acked[-1].position.partition] == acked[-1].position.offset + 1


async def test_offset_for_time(kafka_log: KafkaEventLog) -> None:
    scope = {"org": "acme", "team": "clock"}
    early = await kafka_log.append([memory(scope, f"early {i}") for i in range(3)])
    await asyncio.sleep(0.02)
    late = await kafka_log.append([memory(scope, f"late {i}") for i in range(3)])
    partition = early[0].position.partition
    at = late[0].recorded_at
    assert at > early[-1].recorded_at
    assert await kafka_log.offset_for_time(partition, at) == late[0].position.offset
    assert await kafka_log.offset_for_time(partition, at - timedelta(microseconds=1)) == 3
    assert await kafka_log.offset_for_time(partition, early[0].recorded_at - timedelta(days=1)) == 0
    end = (await kafka_log.end_offsets())[partition]
    assert await kafka_log.offset_for_time(partition, at + timedelta(days=1)) == end == 6


async def test_append_raw_and_partition_count_adoption(
    kafka_log: KafkaEventLog, kafka_broker: str
) -> None:
    appended = await kafka_log.append_raw(2, b"k", b"not json")
    again = await kafka_log.append_raw(2, None, b"{}")
    assert (appended.position.partition, again.position.offset) == (2, appended.position.offset + 1)
    [record] = await kafka_log.read(2, appended.position.offset, limit=1)
    assert (record.key, record.value) == (b"k", b"not json")

    # a second process configured for 8 partitions adopts the topic's real 4
    other = KafkaEventLog(kafka_broker, kafka_log.topic, 8, kafka_log._pool)
    await other.start()
    try:
        assert other.partitions == 4
        assert (await other.end_offsets())[2] == again.position.offset + 1
    finally:
        await other.close()
