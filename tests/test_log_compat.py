"""Old logs keep working: a log written in the version-1 encoding (vectors as JSON floats, sealed
boxes in base64) replays into the state hash the code that wrote it computed, its hash chain still
verifies, and new events appended after it in today's encoding replay beside it.

`fixtures/log_v1.json` is a dump of such a log (every record as stored, with its chain hashes and
log times, the partitions' heads, the enrichment positions and the data keys, one of them
destroyed by a forget), taken by the commit named in it, with the state hash it projected.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.events import MemoryEmbedded, decode_event
from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.sealing import unseal

GOLDEN = Path(__file__).parent / "fixtures" / "log_v1.json"


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


async def restore(conn: AsyncConnection[Any], golden: dict[str, Any]) -> None:
    """Put the dumped log and data keys back exactly as they were stored."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "UPDATE spectron_log.partitions SET next_offset = %s, last_time = %s::timestamptz,"
            " last_hash = %s WHERE partition = %s",
            [
                (p["next_offset"], p["last_time"], _bytes(p["last_hash"]), p["partition"])
                for p in golden["partitions"]
            ],
        )
        await cur.executemany(
            "INSERT INTO spectron_log.events"
            ' (partition, "offset", recorded_at, key, value, prev_hash, hash)'
            " VALUES (%s, %s, %s::timestamptz, %s, %s, %s, %s)",
            [
                (
                    e["partition"],
                    e["offset"],
                    e["recorded_at"],
                    _bytes(e["key"]),
                    _bytes(e["value"]),
                    _bytes(e["prev_hash"]),
                    _bytes(e["hash"]),
                )
                for e in golden["events"]
            ],
        )
        await cur.executemany(
            "INSERT INTO spectron_log.consumer_positions (consumer, partition, next_offset)"
            " VALUES (%s, %s, %s)",
            [
                (c["consumer"], c["partition"], c["next_offset"])
                for c in golden["consumer_positions"]
            ],
        )
        await cur.executemany(
            "INSERT INTO spectron_keys.data_keys"
            " (memory_id, scope, scope_key, key, created_at, forgotten_at)"
            " VALUES (%s, %s, %s, %s, %s::timestamptz, %s::timestamptz)",
            [
                (
                    k["memory_id"],
                    Jsonb(k["scope"]),
                    k["scope_key"],
                    _bytes(k["key"]),
                    k["created_at"],
                    k["forgotten_at"],
                )
                for k in golden["data_keys"]
            ],
        )


async def test_a_version_1_log_replays_into_its_state_hash_and_verifies(make_client) -> None:
    golden = orjson.loads(GOLDEN.read_bytes())
    client = make_client(extractor="patterns", run_projectors=False)
    service = await client.service()
    async with service.pool.connection() as conn:
        await restore(conn, golden)

    await rebuild(service)
    assert await state_hash(service) == golden["state_hash"]
    verified = await service.log.verify_chain()
    checked, breaks = verified.checked, verified.breaks
    assert (checked, breaks) == (len(golden["events"]), [])

    # the vectors come from the version-1 records, read through the upcaster (never re-embedded)
    records = [
        record
        for partition in range(service.log.partitions)
        for record in await service.log.read(partition, 0, 1000)
    ]
    async with service.pool.connection() as conn:
        opened = await unseal(conn, records)
    vectors = [
        event
        for record in opened
        if not record.forgotten and record.fault is None and b'"MemoryEmbedded"' in record.value
        for event in [decode_event(record.value)]
    ]
    assert len(vectors) == 8 and all(isinstance(v, MemoryEmbedded) for v in vectors)
    # written as version 1, read as version 2 through the upcaster
    assert {v.schema_version for v in vectors} == {2}


async def test_new_events_after_a_version_1_log_replay_like_live(make_client) -> None:
    golden = orjson.loads(GOLDEN.read_bytes())
    writer = make_client(extractor="patterns", run_projectors=False)
    async with (await writer.service()).pool.connection() as conn:
        await restore(conn, golden)
    await writer.close()

    client = make_client(extractor="patterns")
    async with client.sessions.create(scope={"org": "golden", "project": "p1"}) as team:
        await team.remember("Customer Initech signed for the pro tier in July.")
        await team.remember("The otter survey moves to April next year.")
    service = await client.service()
    assert await catch_up(service, 60) == 0
    live = await state_hash(service)
    await rebuild(service)
    assert await state_hash(service) == live
    verified = await service.log.verify_chain()
    checked, breaks = verified.checked, verified.breaks
    assert breaks == [] and checked > len(golden["events"])
