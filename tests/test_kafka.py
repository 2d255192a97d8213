"""The Kafka backend against a real (Tansu) broker: what only Kafka has, and faust workers projecting.

The log port's contract, which Kafka shares with the embedded log, is tests/test_log_contract.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from projectors.faust_app import Processors, chain_group, projection_group
from spectron import SpectronClient
from spectron.config import Settings
from spectron.db import open_pool, prepare_database
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import LogUnavailable, StoreUnavailable
from spectron.events import (
    MemoryEmbedded,
    MemoryRecorded,
    MemoryRecordedPayload,
    new_event_fields,
)
from spectron.log import decode_record
from spectron.log import kafka as kafka_module
from spectron.log.kafka import KafkaEventLog
from spectron.positions import projection_positions
from tests.conftest import SETTLE_TIMEOUT
from tests.kafka_support import KafkaDeployment, run_deployment, unique_topic
from tests.log_support import opened

pytestmark = pytest.mark.kafka


def memory(scope: dict[str, str], content: str) -> MemoryRecorded:
    """A fresh MemoryRecorded event."""
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


async def test_unreachable_broker_is_log_unavailable(kafka_log: KafkaEventLog) -> None:
    dead = KafkaEventLog("127.0.0.1:1", "nowhere", 4, kafka_log._pool)  # nothing listens
    started = time.monotonic()
    with pytest.raises(LogUnavailable, match="cannot reach Kafka"):
        await dead.start()
    assert time.monotonic() - started < 10
    with pytest.raises(LogUnavailable, match="not started"):
        await dead.append([memory({"org": "acme"}, "lost")])


async def test_an_acknowledged_append_is_reported_even_if_its_heads_cannot_be_recorded(
    kafka_log: KafkaEventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is in Kafka: StoreUnavailable ("nothing was done") would invite a duplicate."""

    async def database_down(conn: Any, heads: Any) -> None:
        raise StoreUnavailable("the database is unavailable: restarting")

    monkeypatch.setattr(kafka_module, "record_heads", database_down)
    [appended] = await kafka_log.append([memory({"org": "acme"}, "kept despite the outage")])
    assert appended.position.offset >= 0


async def test_the_topic_keeps_every_record_for_good(
    kafka_log: KafkaEventLog, kafka_broker: str
) -> None:
    """The log is the truth: a broker's default retention must not delete what replay reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka_log.topic)]
        )
    finally:
        await admin.close()
    [resource] = response.resources
    entries = {entry[0]: entry[1] for entry in resource[4]}
    assert entries["retention.ms"] == "-1" and entries["retention.bytes"] == "-1"


@pytest.fixture
async def processors(
    kafka_log: KafkaEventLog, kafka_broker: str, database: str, hashing: HashingEmbedder
) -> AsyncIterator[Processors]:
    """The faust agents' processing, driven by hand on the test topic."""
    settings = Settings(
        kafka_bootstrap=kafka_broker, database_url=database, topic=kafka_log.topic, partitions=4
    )
    found = await Processors.open(settings, hashing)
    try:
        yield found
    finally:
        await found.close()


async def assert_all_applied(processors: Processors, partition: int, embedding: Any) -> None:
    """The 10 records of the partition are projected once and the embedding pass is past them."""
    async with processors.pool.connection() as conn:
        assert (await projection_positions(conn))[partition] == 10
        cur = await conn.execute("SELECT count(*) FROM memories")
        assert await cur.fetchone() == (10,)
        cur = await conn.execute(
            "SELECT next_offset FROM spectron_log.consumer_positions WHERE consumer = %s",
            [embedding.name],
        )
        assert await cur.fetchone() == (10,)


async def test_agents_fill_gaps_and_skip_redeliveries(
    kafka_log: KafkaEventLog, processors: Processors
) -> None:
    events = [memory({"org": "acme", "team": "gaps"}, f"gap {i}") for i in range(10)]
    partition = (await kafka_log.append(events))[0].position.partition
    records = await kafka_log.read(partition, 0)
    # faust acks a batch even when its processing was cancelled, so a group can resume past
    # records never applied: the agents read such a gap from the log first
    await processors.project(partition, records[6:])
    await processors.project(partition, records[2:8])  # a redelivery changes nothing
    embedding = processors.enrichers[0]  # the embedding pass comes first
    await processors.enrich(embedding, partition, records[4:])
    await processors.enrich(embedding, partition, records)  # nor here: no second vector
    await assert_all_applied(processors, partition, embedding)
    # the broker's end offsets lag its true end (Tansu): wait until the appended vectors read back
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        read = await opened(kafka_log.pool, await kafka_log.read(partition, 10))
        vectors = [decode_record(r).event for r in read]
        if len(vectors) >= 10 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert sorted(v.payload.memory_id for v in vectors if isinstance(v, MemoryEmbedded)) == (
        sorted(e.event_id for e in events)
    )
    assert len(vectors) == 10


async def test_agents_fill_holes_inside_a_batch(
    kafka_log: KafkaEventLog, processors: Processors
) -> None:
    """A batch that skips offsets must not move the position past the records it skipped."""
    events = [memory({"org": "acme", "team": "holes"}, f"hole {i}") for i in range(10)]
    partition = (await kafka_log.append(events))[0].position.partition
    records = await kafka_log.read(partition, 0)
    await processors.project(partition, records[:3] + records[5:8] + records[9:])
    embedding = processors.enrichers[0]
    await processors.enrich(embedding, partition, records[7:] + records[:2])
    await assert_all_applied(processors, partition, embedding)


# ---------------------------------------------------------------- faust workers on Kafka + Postgres

SHARED = {"org": "acme", "project": "market-research-q3"}


@pytest.fixture(scope="module")
def deployment(
    kafka_broker: str, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaDeployment]:
    """Two `projectors.faust_app` workers on a fresh 4-partition topic, shared by this module."""
    with run_deployment(kafka_broker, pg_server, tmp_path_factory.mktemp("workers")) as found:
        yield found


@pytest.fixture
async def kafka_client(
    deployment: KafkaDeployment, make_client: Callable[..., SpectronClient]
) -> SpectronClient:
    """A client appending to the deployment's topic; projection is left to the workers."""
    client = make_client(
        kafka=deployment.bootstrap,
        database=deployment.database,
        run_projectors=False,
        settings=Settings(topic=deployment.topic, partitions=4),
    )
    # the first recall also waits for both workers to start and join their consumer groups
    async with client.sessions.create(scope={"org": "warm-up"}) as s:
        await s.remember("Workers are up.")
        try:
            warm = await s.recall("workers up", timeout=45.0)
        except Exception as exc:
            raise AssertionError(f"workers did not start\n{deployment.log_tails()}") from exc
    assert warm.pending == 0 and warm.items, deployment.log_tails()
    return client


async def test_seed_snippet_and_bulk_exactly_once(
    kafka_client: SpectronClient, deployment: KafkaDeployment
) -> None:
    client = kafka_client
    async with client.sessions.create(scope=SHARED) as a:
        await a.remember(
            content="Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
            memory_category="knowledge",
        )
        await a.remember(content="The office coffee machine is broken again.")
    async with client.sessions.create(scope=SHARED) as b:
        ctx = await b.recall(query="recent competitor pricing changes", top_k=5)
    assert "Competitor X" in ctx.items[0].content
    assert ctx.items[0].embedded and ctx.pending == 0

    # 200 memories over 20 scopes (spread over the 4 partitions), appended concurrently
    scopes = [{"org": "bulk", "project": f"p{i % 5}", "agent": f"a{i}"} for i in range(20)]
    sessions = [await client.sessions.create(scope=scope) for scope in scopes]
    remembered = await asyncio.gather(
        *(
            sessions[i].remember(f"Agent a{i} observation {j}: metric m{i}x{j} moved.")
            for j in range(10)
            for i in range(20)
        )
    )
    assert len({r.partition for r in remembered}) == 4
    results = await asyncio.gather(
        *(s.recall(f"agent a{i} metric observation", top_k=20) for i, s in enumerate(sessions))
    )
    for i, result in enumerate(results):
        assert result.pending == 0
        assert len(result.items) == 10, f"scope a{i} sees {len(result.items)} of its 10 memories"
        assert all(item.embedded for item in result.items)

    # every event projected exactly once: positions reach the acknowledged ends and stay there.
    # The broker's ends are read in the same pass: the workers' enrichers (extraction among them,
    # which no recall waits for) may still append, and each such record is on the broker a moment
    # before its acknowledgement is recorded
    service = await client.service()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        async with service.pool.connection() as conn:
            positions = await projection_positions(conn)
            cur = await conn.execute("SELECT partition, next_offset FROM spectron_log.partitions")
            acked = {int(p): int(n) for p, n in await cur.fetchall()}
        ends = await service.log.end_offsets()
        if positions == acked == ends or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert positions == acked, deployment.log_tails()
    assert acked == ends

    # replay the log: each memory was projected once, where and when the log recorded it
    recorded: dict[uuid.UUID, tuple[int, int, datetime]] = {}
    embedded: set[uuid.UUID] = set()
    for partition, end in acked.items():
        offset = 0
        while offset < end:
            batch = await service.log.read(partition, offset)
            offset = batch[-1].position.offset + 1
            for record in await opened(service.pool, batch):
                event = decode_record(record).event
                if isinstance(event, MemoryRecorded) and event.scope["org"] == "bulk":
                    recorded[event.event_id] = (*record.position, record.recorded_at)
                elif isinstance(event, MemoryEmbedded):
                    embedded.add(event.payload.memory_id)
    assert set(recorded) == {r.id for r in remembered} and set(recorded) <= embedded
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            'SELECT memory_id, partition, "offset", recorded_at, embedding IS NOT NULL'
            " FROM memories WHERE scope->>'org' = 'bulk'"
        )
        rows = await cur.fetchall()
    assert {m: (p, o, t) for m, p, o, t, _ in rows} == recorded
    assert all(has_vector for *_, has_vector in rows)
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        assert await cur.fetchone() == (0,)


async def test_worker_sees_parent_and_own_never_sibling(kafka_client: SpectronClient) -> None:
    client = kafka_client
    shared = {"org": "vis", "project": "market-research-q3"}
    w1, w2 = {**shared, "agent": "w1"}, {**shared, "agent": "w2"}
    for scope, content in [
        (shared, "Shared: pricing review is due on Friday."),
        ({"org": "vis"}, "Org: pricing decisions need CFO sign-off."),
        (w1, "W1: pricing page of Competitor X changed."),
        (w2, "W2: pricing survey results are in."),
        ({"org": "other"}, "Other org: pricing is secret."),
    ]:
        async with client.sessions.create(scope=scope) as s:
            await s.remember(content)

    async with client.sessions.create(scope=w1) as s:
        seen = {item.content[:3] for item in (await s.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:"}
    async with client.sessions.create(scope=shared) as s:
        seen = {item.content[:3] for item in (await s.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:", "W2:"}
    async with client.sessions.create(scope=w2) as s:
        result = await s.recall("pricing page competitor", top_k=20, mode="dense")
    assert "W1:" not in {item.content[:3] for item in result.items}


async def test_workers_keep_faust_data_under_their_home(
    kafka_client: SpectronClient, deployment: KafkaDeployment
) -> None:
    """Not in `<app id>-data` in whatever directory the worker was started from."""
    home = deployment.logs[0].parent  # the workers' SPECTRON_HOME
    for app_id in (projection_group(deployment.topic), chain_group(deployment.topic)):
        assert (home / "faust" / app_id).is_dir()
        assert not (Path.cwd() / f"{app_id}-data").exists()
