"""Poison: records another producer writes straight to the log, on both backends.

Each kind lands in the dead-letter store at its exact position with a reason naming the problem;
the good events around it are all projected (and embedded); `spectron dlq list/retry` shows them
and revives those that decode after an upgrade.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

import spectron.events
from projectors.dead_letters import retry_dead_letters
from projectors.tailer import enrich_once, project_once
from projectors.vector_index import move_all_staged
from spectron import SpectronClient
from spectron.config import Settings
from spectron.dlq import list_dead_letters
from spectron.events import LogPosition, MemoryRecorded, MemoryRecordedPayload, encode_event
from spectron.events import new_event_fields as fields
from spectron.log import partition_for
from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.ops_cli import dlq_app
from spectron.scope import scope_key
from spectron.service import MemoryService

SCOPE = {"org": "acme", "team": "poison"}


def _template() -> dict[str, Any]:
    event = MemoryRecorded(
        **fields(SCOPE, "test:poison"), payload=MemoryRecordedPayload(content="x")
    )
    return orjson.loads(encode_event(event))


def _mutated(change: Callable[[dict[str, Any]], object]) -> bytes:
    event = _template()
    change(event)
    return orjson.dumps(event)


def _payload(**values: Any) -> Callable[[dict[str, Any]], object]:
    return lambda event: event["payload"].update(values)


def _vector_event() -> bytes:
    event = _template()
    event.update(
        type="MemoryEmbedded", payload={"memory_id": event["event_id"], "model": "m", "vector": []}
    )
    return orjson.dumps(event)


# (kind, raw bytes, a fragment the dead letter's reason must contain)
POISON: list[tuple[str, bytes, str]] = [
    ("not JSON", b"not json at all", "Invalid JSON"),
    ("invalid UTF-8", b'{"type": "MemoryRecorded", "x": "\xff\xfe"}', "Invalid JSON"),
    ("empty record", b"", "Invalid JSON"),
    ("JSON array", b"[1, 2, 3]", "Input should be an object"),
    ("JSON null", b"null", "Input should be an object"),
    ("unknown type", _mutated(lambda e: e.update(type="MemoryDeleted")), "'MemoryDeleted'"),
    ("no type", _mutated(lambda e: e.pop("type")), "discriminator 'type'"),
    ("future schema_version", _mutated(lambda e: e.update(schema_version=2)), "schema_version"),
    ("missing principal", _mutated(lambda e: e.pop("principal")), "principal: Field required"),
    ("missing payload", _mutated(lambda e: e.pop("payload")), "payload: Field required"),
    ("extra field", _mutated(lambda e: e.update(priority=1)), "priority: Extra inputs"),
    ("extra payload field", _mutated(_payload(priority=1)), "payload.priority: Extra inputs"),
    ("empty scope", _mutated(lambda e: e.update(scope={})), "scope: Value error"),
    ("bad scope key", _mutated(lambda e: e.update(scope={"bad key!": "x"})), "scope key"),
    ("empty content", _mutated(_payload(content="")), "payload.content"),
    ("blank content", _mutated(_payload(content="   ")), "content must not be empty"),
    ("NUL in content", _mutated(_payload(content="a\x00b")), "NUL"),
    ("content not a string", _mutated(_payload(content=5)), "payload.content"),
    ("bad event_id", _mutated(lambda e: e.update(event_id="not-a-uuid")), "event_id"),
    ("bad client_time", _mutated(lambda e: e.update(client_time="yesterday")), "client_time"),
    ("bad category", _mutated(_payload(memory_category="gossip")), "memory_category"),
    ("metadata not an object", _mutated(_payload(metadata=[1])), "payload.metadata"),
    ("empty vector", _vector_event(), "payload.vector"),
    ("oversized", _mutated(_payload(content="x" * 300_000)), "at most 262144"),
]


def good(n: int) -> MemoryRecorded:
    """A valid memory at SCOPE."""
    return MemoryRecorded(
        **fields(SCOPE, "test:poison"),
        payload=MemoryRecordedPayload(content=f"Good event {n}: the otter survey is on track."),
    )


async def write_mix(service: MemoryService) -> tuple[list[uuid.UUID], dict[str, LogPosition]]:
    """good, poison, good, poison, ..., good: all in SCOPE's partition, poison by append_raw."""
    event_log: Any = service.log  # both adapters have append_raw
    partition = partition_for(scope_key(SCOPE).encode(), event_log.partitions)
    goods: list[uuid.UUID] = []
    poison: dict[str, LogPosition] = {}
    for n, (kind, value, _) in enumerate(POISON):
        event = good(n)
        [appended] = await event_log.append([event])
        assert appended.position.partition == partition
        goods.append(event.event_id)
        poison[kind] = (await event_log.append_raw(partition, b"foreign", value)).position
    event = good(len(POISON))
    await event_log.append([event])
    goods.append(event.event_id)
    return goods, poison


async def check_dead_letters(
    service: MemoryService, goods: list[uuid.UUID], poison: dict[str, LogPosition]
) -> None:
    """Every poison kind dead-lettered where it was written, with its reason; all goods projected."""
    pending = await catch_up(service, 60)
    assert pending == 0, "the good memories are embedded too"
    letters = {letter.position: letter for letter in await list_dead_letters(service.pool, 1000)}
    assert set(letters) == set(poison.values())
    expected = {kind: (value, fragment) for kind, value, fragment in POISON}
    for kind, position in poison.items():
        letter = letters[position]
        value, fragment = expected[kind]
        assert fragment in letter.reason, f"{kind}: {letter.reason!r}"
        assert letter.value == value, kind
        assert letter.consumer == "projections"
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT memory_id, count(*) FROM memories WHERE memory_id = ANY(%s) GROUP BY memory_id",
            [goods],
        )
        counts = dict(await cur.fetchall())
        cur = await conn.execute("SELECT count(*) FROM memories WHERE embedding IS NULL")
        assert await cur.fetchone() == (0,)
    assert counts == dict.fromkeys(goods, 1)
    found = await service.recall(SCOPE, "otter survey", top_k=100)
    assert sorted(item.id for item in found.items) == sorted(goods)


# --------------------------------------------------------------------------------------- embedded


async def test_poison_table_embedded(make_client: Callable[..., SpectronClient]) -> None:
    client = make_client(extractor="none")
    service = await client.service()
    goods, poison = await write_mix(service)
    assert len(POISON) >= 10
    await check_dead_letters(service, goods, poison)
    # replay dead-letters them again, identically
    before = await state_hash(service)
    await rebuild(service)
    await catch_up(service, 30)
    assert await state_hash(service) == before


async def test_a_dead_letter_keeps_sealed_bytes_and_goes_with_its_forgotten_memory(
    make_client: Callable[..., SpectronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    secret = MemoryRecorded(
        **fields(SCOPE, "test:poison"),
        payload=MemoryRecordedPayload(content="The vault opens with code 7731."),
    )
    monkeypatch.setattr(spectron.events, "MAX_EVENT_BYTES", 100)  # an older version's limit
    [appended] = await service.log.append([secret])
    await project_once(service.pool, service.log, service.context)
    monkeypatch.undo()
    [letter] = await list_dead_letters(service.pool)
    assert letter.position == appended.position
    assert b"vault" not in letter.value  # as logged: sealed, never the opened content

    async with client.sessions.create(scope=SCOPE) as session:
        assert await session.forget(secret.event_id)
    assert await list_dead_letters(service.pool) == []  # a replay has none for it either
    while await project_once(service.pool, service.log, service.context):
        pass  # the tombstone too
    before = await state_hash(service)
    await rebuild(service)
    assert await state_hash(service) == before


async def test_retry_keeps_what_still_fails_and_revives_after_an_upgrade(
    make_client: Callable[..., SpectronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # no background loops: each projection and enrichment step is taken explicitly
    client = make_client(run_projectors=False)
    service = await client.service()
    event_log: Any = service.log
    partition = partition_for(scope_key(SCOPE).encode(), event_log.partitions)
    garbage = await event_log.append_raw(partition, None, b"\x00garbage")
    big = MemoryRecorded(
        **fields(SCOPE, "test:poison"),
        payload=MemoryRecordedPayload(content="Competitor X's Pro tier costs $299/mo."),
    )
    # "an older version" with a smaller size limit dead-letters a memory the current one takes
    monkeypatch.setattr(spectron.events, "MAX_EVENT_BYTES", 100)
    [appended] = await service.log.append([big])
    await project_once(service.pool, service.log, service.context)
    for enricher in service.enrichers():
        await enrich_once(service.pool, event_log, enricher)
    monkeypatch.undo()
    letters = await list_dead_letters(service.pool)
    assert [letter.position for letter in letters] == [garbage.position, appended.position]
    assert "at most 100" in letters[1].reason

    # the garbage still fails (its reason refreshed); the memory decodes now: applied + enriched
    report = await retry_dead_letters(
        service.pool,
        service.context,
        event_log=service.log,
        enrichers=service.enrichers(),
        transactional_log=service.transactional_log,
    )
    assert report.revived == [appended.position]
    assert (
        list(report.kept) == [garbage.position] and "Invalid JSON" in report.kept[garbage.position]
    )
    assert [letter.position for letter in await list_dead_letters(service.pool)] == [
        garbage.position
    ]
    await project_once(service.pool, service.log, service.context)  # the vector, already applied
    async with service.pool.connection() as conn:
        await move_all_staged(conn)  # the movers' step (no background loops here)
        cur = await conn.execute(
            'SELECT partition, "offset", embedding IS NOT NULL FROM memories WHERE memory_id = %s',
            [big.event_id],
        )
        assert await cur.fetchone() == (*appended.position, True)
        cur = await conn.execute(
            "SELECT value FROM attribute_values WHERE memory_id = %s", [big.event_id]
        )
        assert await cur.fetchall() == [("$299/mo",)]
    result = await service.recall(SCOPE, "Pro tier price", mode="dense", timeout=60)
    assert result.pending == 0 and [i.id for i in result.items] == [big.event_id]
    # the revived state is what a replay of the log (decoding it whole now) builds
    before = await state_hash(service)
    await rebuild(service)
    assert await state_hash(service) == before

    # retrying one position: missing positions are reported, not invented
    again = await retry_dead_letters(
        service.pool, service.context, [LogPosition(partition, 10_000), garbage.position]
    )
    assert again.missing == [LogPosition(partition, 10_000)] and list(again.kept) == [
        garbage.position
    ]


async def test_retry_leaves_the_dead_letter_when_enrichment_fails(
    make_client: Callable[..., SpectronClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    monkeypatch.setattr(spectron.events, "MAX_EVENT_BYTES", 100)
    [appended] = await service.log.append([good(1)])
    await project_once(service.pool, service.log, service.context)
    monkeypatch.undo()

    class Down:
        name = "enrich:down"
        batch_size = 1

        async def enrich(self, conn: Any, memories: Any) -> list[Any]:
            raise ConnectionError("embedding service down")

    report = await retry_dead_letters(
        service.pool,
        service.context,
        event_log=service.log,
        enrichers=[Down()],
        transactional_log=service.transactional_log,
    )
    assert report.revived == [] and "embedding service down" in report.kept[appended.position]
    [letter] = await list_dead_letters(service.pool)
    assert letter.position == appended.position and "at most 100" in letter.reason
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM memories")
        assert await cur.fetchone() == (0,), "the projection was rolled back with it"


async def test_dlq_cli_lists_and_retries(
    make_client: Callable[..., SpectronClient],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = make_client(extractor="none")
    service = await client.service()
    _, poison = await write_mix(service)
    await catch_up(service, 30)
    await client.close()

    monkeypatch.setenv("SPECTRON_DATABASE_URL", database)
    monkeypatch.setenv("SPECTRON_EMBEDDER", "hashing")
    monkeypatch.delenv("SPECTRON_KAFKA_BOOTSTRAP", raising=False)
    runner = CliRunner()
    listed = await asyncio.to_thread(runner.invoke, dlq_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [orjson.loads(line) for line in listed.output.splitlines()]
    assert [(r["partition"], r["offset"]) for r in rows] == sorted(
        tuple(p) for p in poison.values()
    )
    for (kind, _, fragment), row in zip(POISON, rows, strict=True):
        assert fragment in row["reason"], kind

    table = await asyncio.to_thread(
        runner.invoke, dlq_app, ["list", "--limit", "3"], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    assert f"{len(POISON)} dead letters (showing 3)" in " ".join(table.output.split())

    where = poison["unknown type"]
    one = await asyncio.to_thread(
        runner.invoke,
        dlq_app,
        ["retry", "--partition", str(where.partition), "--offset", str(where.offset)],
        env={"COLUMNS": "200"},
    )
    said = " ".join(one.output.split())
    assert one.exit_code == 1 and "still dead: event: Input tag 'MemoryDeleted'" in said
    assert "revived 0, still dead 1" in said
    half = await asyncio.to_thread(runner.invoke, dlq_app, ["retry", "--partition", "1"])
    assert half.exit_code == 2


# ------------------------------------------------------------------------------------------ kafka


@dataclass(frozen=True)
class Worker:
    """A topic and the `projectors.faust_app` worker projecting it."""

    bootstrap: str
    database: str
    topic: str
    log: Path


@pytest.fixture
def kafka_worker(kafka_broker: str, database: str, tmp_path: Path) -> Iterator[Worker]:
    """One worker process on a fresh 4-partition topic and a fresh database."""
    topic = f"poison-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SPECTRON_KAFKA_BOOTSTRAP": kafka_broker,
        "SPECTRON_DATABASE_URL": database,
        "SPECTRON_TOPIC": topic,
        "SPECTRON_PARTITIONS": "4",
        "SPECTRON_EMBEDDER": "hashing",
        "SPECTRON_EXTRACTOR": "none",
        "SPECTRON_HOME": str(tmp_path),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "projectors.faust_app"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Worker(kafka_broker, database, topic, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(8)  # the worker exits by itself at most 5 s after SIGTERM
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def kafka_service(
    kafka_worker: Worker, make_client: Callable[..., SpectronClient]
) -> AsyncIterator[MemoryService]:
    """A service appending to the worker's topic (projection is the worker's)."""
    client = make_client(
        kafka=kafka_worker.bootstrap,
        database=kafka_worker.database,
        run_projectors=False,
        extractor="none",
        settings=Settings(topic=kafka_worker.topic, partitions=4),
    )
    yield await client.service()


@pytest.mark.kafka
async def test_poison_table_kafka(kafka_service: MemoryService, kafka_worker: Worker) -> None:
    goods, poison = await write_mix(kafka_service)
    try:
        await check_dead_letters(kafka_service, goods, poison)
    except BaseException:
        print(kafka_worker.log.read_text()[-5000:])
        raise

    # retry on Kafka: as if an older worker had dead-lettered a memory this version decodes
    revived = good(1000)
    [appended] = await kafka_service.log.append([revived])
    await catch_up(kafka_service, 30)
    async with kafka_service.pool.connection() as conn:
        await conn.execute("DELETE FROM memories WHERE memory_id = %s", [revived.event_id])
        await conn.execute(
            'INSERT INTO dead_letters (consumer, partition, "offset", recorded_at, reason, value)'
            " VALUES ('projections', %s, %s, %s, 'unknown type (older version)', %s)",
            [*appended.position, appended.recorded_at, encode_event(revived)],
        )
    report = await retry_dead_letters(
        kafka_service.pool,
        kafka_service.context,
        [appended.position, poison["not JSON"]],
        event_log=kafka_service.log,
        enrichers=kafka_service.enrichers(),
    )
    assert report.revived == [appended.position] and list(report.kept) == [poison["not JSON"]]
    remaining = {letter.position for letter in await list_dead_letters(kafka_service.pool, 1000)}
    assert remaining == set(poison.values())
    # the worker applies the vector the retry appended once the memory row is there
    found = await kafka_service.recall(SCOPE, "otter survey", top_k=100, mode="dense", timeout=60)
    assert revived.event_id in [item.id for item in found.items] and found.pending == 0
