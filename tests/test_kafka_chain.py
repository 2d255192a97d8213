"""Tamper evidence on Kafka: the chainer links the topic, and verify names what changed where."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from projectors.faust_app import Processors
from spectron.config import Settings
from spectron.db import open_pool, prepare_database
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import ChainGap
from spectron.events import MemoryRecorded, MemoryRecordedPayload, new_event_fields
from spectron.log import RawRecord
from spectron.log.chain import verify_links
from spectron.log.kafka import EPOCH, KafkaEventLog
from spectron.log.kafka_chain import (
    chain_head,
    chain_snapshot,
    extend_chain,
    read_until,
    verify_kafka_chain,
)
from spectron.maintenance import catch_up
from tests.conftest import SETTLE_TIMEOUT
from tests.kafka_support import KafkaDeployment, unique_topic

pytestmark = pytest.mark.kafka

SCOPE = {"org": "acme", "project": "audit"}
PARTITIONS = 2


def memory(content: str) -> MemoryRecorded:
    """A fresh MemoryRecorded event in the audited scope."""
    return MemoryRecorded(
        **new_event_fields(SCOPE, "test:chain"), payload=MemoryRecordedPayload(content=content)
    )


@dataclasses.dataclass
class Chained:
    """A topic of six audited notes (one partition), chained, and the database holding the chain."""

    log: KafkaEventLog
    pool: AsyncConnectionPool
    database: str
    partition: int


async def chain_all(log: KafkaEventLog, pool: AsyncConnectionPool) -> None:
    """What the worker's chainer does, in-process: link every partition up to its end."""
    for partition, end in (await log.end_offsets()).items():
        async with pool.connection() as conn:
            await extend_chain(conn, partition, await read_until(log, partition, end))


@pytest.fixture
async def chained(
    kafka_broker: str, database: str, hashing: HashingEmbedder
) -> AsyncIterator[Chained]:
    """Six notes appended to a fresh topic and linked by the chainer."""
    await prepare_database(database, "spectron", hashing.dim)
    pool = await open_pool(database, "spectron")
    log = KafkaEventLog(kafka_broker, unique_topic("chain"), PARTITIONS, pool)
    await log.start()
    try:
        appended = await log.append([memory(f"audited note {i}") for i in range(6)])
        await chain_all(log, pool)
        yield Chained(log, pool, database, appended[0].position.partition)
    finally:
        await log.close()
        await pool.close()


async def test_chained_topic_verifies_and_new_records_wait_for_the_chainer(
    chained: Chained,
) -> None:
    report = await verify_kafka_chain(chained.log, chained.pool)
    assert (report.checked, report.unchained, report.breaks) == (6, 0, [])
    await chained.log.append([memory("not chained yet"), memory("nor this")])
    report = await verify_kafka_chain(chained.log, chained.pool)
    assert (report.checked, report.unchained, report.breaks) == (6, 2, [])


def altered(records: list[RawRecord]) -> list[RawRecord]:
    value = bytearray(records[3].value)
    value[40] ^= 1
    return [*records[:3], dataclasses.replace(records[3], value=bytes(value)), *records[4:]]


def swapped(records: list[RawRecord]) -> list[RawRecord]:
    # two records produced in the other order: each offset now holds the other's bytes
    out = list(records)
    for a, b in ((1, 4), (4, 1)):
        out[a] = dataclasses.replace(records[b], position=records[a].position)
    return out


def backdated(records: list[RawRecord]) -> list[RawRecord]:
    earlier = records[5].recorded_at - timedelta(hours=1)
    return [*records[:5], dataclasses.replace(records[5], recorded_at=earlier)]


@pytest.mark.parametrize(
    ("tamper", "offset", "reason"),
    [
        (altered, 3, "differs from the one chained"),
        (lambda rs: rs[:2] + rs[3:], 2, "offset 2 missing from the topic (next is 3)"),
        (swapped, 1, "differs from the one chained"),
        (backdated, 5, "differs from the one chained"),
        (lambda rs: rs[:5], 5, "offset 5 missing from the topic (the topic ends)"),
        (lambda rs: [rs[0], rs[0], *rs[1:]], 1, "offset 0 again, out of order"),
    ],
    ids=["altered byte", "removed", "reordered", "backdated", "truncated", "duplicated"],
)
async def test_tampered_copies_of_the_topic_are_named(
    chained: Chained, tamper: Callable[[list[RawRecord]], list[RawRecord]], offset, reason
) -> None:
    head, links = await chain_snapshot(chained.pool, chained.partition)
    records = await read_until(chained.log, chained.partition, head.next_offset)
    assert verify_links(chained.partition, head, links, records) == (6, None)
    checked, found = verify_links(chained.partition, head, links, tamper(records))
    assert found is not None and (found.partition, found.offset) == (chained.partition, offset)
    assert reason in found.reason and checked == offset


@pytest.mark.parametrize(
    ("tamper", "offset", "reason"),
    [
        (
            "UPDATE spectron_log.kafka_chain SET digest = sha256(digest)"
            ' WHERE partition = %(p)s AND "offset" = 3',
            3,
            "digest was edited",
        ),
        (
            "UPDATE spectron_log.kafka_chain SET hash = sha256(hash)"
            ' WHERE partition = %(p)s AND "offset" = 4',
            4,
            "hash was edited",
        ),
        (
            'DELETE FROM spectron_log.kafka_chain WHERE partition = %(p)s AND "offset" = 2',
            2,
            "no link",
        ),
        (
            "UPDATE spectron_log.kafka_chain_heads SET last_hash = sha256(last_hash)"
            " WHERE partition = %(p)s",
            5,
            "head does not match",
        ),
    ],
    ids=["digest edited", "hash edited", "link removed", "head edited"],
)
async def test_tampered_chain_is_named(chained: Chained, tamper: str, offset, reason) -> None:
    async with chained.pool.connection() as conn:
        await conn.execute(tamper, {"p": chained.partition})
    report = await verify_kafka_chain(chained.log, chained.pool)
    assert [(b.partition, b.offset) for b in report.breaks] == [(chained.partition, offset)]
    assert reason in report.breaks[0].reason


async def test_concurrent_chainers_link_each_record_once(
    chained: Chained,
) -> None:
    p = chained.partition
    more = await chained.log.append([memory(f"later note {i}") for i in range(6)])
    records = await read_until(chained.log, p, more[-1].position.offset + 1)

    async def chain(batch: list[RawRecord]) -> None:
        async with chained.pool.connection() as conn:
            await extend_chain(conn, p, batch)

    # overlapping redeliveries, as two workers see them during a rebalance
    await asyncio.gather(*(chain(records[: 6 + n]) for n in (2, 6, 4, 6)))
    async with chained.pool.connection() as conn:
        assert (await chain_head(conn, p)).next_offset == 12
        last = await chained.log.append([memory("skipped"), memory("after a hole")])
        [after_hole] = await chained.log.read(p, last[-1].position.offset, 1)
        with pytest.raises(ChainGap):
            await extend_chain(conn, p, [*records, after_hole])
        assert (await chain_head(conn, p)).next_offset == 12, "nothing linked over a hole"
    report = await verify_kafka_chain(chained.log, chained.pool)
    assert (report.checked, report.unchained, report.breaks) == (12, 2, [])


async def test_worker_chainer_fills_gaps_and_skips_redeliveries(
    kafka_broker: str, database: str, hashing: HashingEmbedder
) -> None:
    topic = unique_topic("chain-gaps")
    settings = Settings(
        kafka_bootstrap=kafka_broker, database_url=database, topic=topic, partitions=PARTITIONS
    )
    processors = await Processors.open(settings, hashing, enrichers=[])
    try:
        log = processors.event_log
        p = (await log.append([memory(f"gap {i}") for i in range(10)]))[0].position.partition
        records = await log.read(p, 0)
        # faust may resume a group past records never chained: the chainer reads them first
        await processors.chain(p, records[6:])
        await processors.chain(p, records[2:8])  # a redelivery links nothing twice
        report = await verify_kafka_chain(log, processors.pool)
        assert (report.checked, report.unchained, report.breaks) == (10, 0, [])
        assert report.heads[p].next_offset == 10
    finally:
        await processors.close()


def cli_verify(bootstrap: str, database: str, topic: str) -> subprocess.CompletedProcess[str]:
    """`spectron log verify` in Kafka mode, configured as the docs say: SPECTRON_* variables."""
    env = {
        **os.environ,
        "SPECTRON_KAFKA_BOOTSTRAP": bootstrap,
        "SPECTRON_DATABASE_URL": database,
        "SPECTRON_TOPIC": topic,
        "SPECTRON_EMBEDDER": "hashing",
        "COLUMNS": "200",  # one line per message, whatever the terminal
    }
    cli = [sys.executable, "-m", "spectron.cli", "log", "verify"]
    return subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)


async def test_cli_names_a_record_altered_in_the_topic(chained: Chained, kafka_broker) -> None:
    ok = await asyncio.to_thread(cli_verify, kafka_broker, chained.database, chained.log.topic)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "checked 6 records" in ok.stdout
    # Tansu cannot alter a record in place: produce the topic again, one record altered, with the
    # same keys and times, and verify that copy against the chain the original left
    copy = KafkaEventLog(kafka_broker, unique_topic("chain-copy"), PARTITIONS, chained.pool)
    await copy.start()
    await copy.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all")
    await producer.start()
    try:
        for partition, end in (await chained.log.end_offsets()).items():
            records = await read_until(chained.log, partition, end)
            if partition == chained.partition:
                records = altered(records)
            for r in records:
                await producer.send_and_wait(
                    copy.topic,
                    value=r.value,
                    key=r.key,
                    partition=partition,
                    timestamp_ms=(r.recorded_at - EPOCH) // timedelta(milliseconds=1),
                )
    finally:
        await producer.stop()
    bad = await asyncio.to_thread(cli_verify, kafka_broker, chained.database, copy.topic)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"partition {chained.partition} offset 3: record differs" in bad.stdout


async def test_worker_chains_what_it_consumes(
    kafka_deployment: KafkaDeployment, make_client
) -> None:
    client = make_client(
        kafka=kafka_deployment.bootstrap,
        database=kafka_deployment.database,
        run_projectors=False,
        settings=Settings(topic=kafka_deployment.topic, partitions=4),
    )
    async with client.sessions.create(scope={"org": f"chain-{uuid.uuid4().hex[:8]}"}) as s:
        for i in range(3):
            await s.remember(f"chained by the worker {i}")
    service = await client.service()
    await catch_up(service)
    ends = await service.log.end_offsets()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        async with service.pool.connection() as conn:
            heads = {p: (await chain_head(conn, p)).next_offset for p in ends}
        if all(heads[p] >= end for p, end in ends.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert all(heads[p] >= end for p, end in ends.items()), (heads, ends)
    result = await asyncio.to_thread(
        cli_verify, kafka_deployment.bootstrap, kafka_deployment.database, kafka_deployment.topic
    )
    assert result.returncode == 0, result.stdout + result.stderr + kafka_deployment.log_tails()
    checked = re.search(r"checked (\d+) records", result.stdout)
    assert checked is not None and int(checked.group(1)) >= sum(ends.values()), result.stdout
