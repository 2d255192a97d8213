"""Blue/green replay with verification, attribute history and who-did-what audit (issue 5)."""

from __future__ import annotations

import uuid

from spectron.history import audit_log
from spectron.maintenance import blue_green_replay

SCOPE = {"org": "acme", "project": "audit"}


async def fill(client) -> dict:
    ids = {}
    async with client.sessions.create(scope=SCOPE, principal="agent:a") as s:
        ids["a"] = (await s.remember("Competitor X's Pro tier costs $299/mo.")).id
    async with client.sessions.create(scope={**SCOPE, "agent": "w1"}, principal="agent:b") as s:
        ids["b"] = (await s.remember("Competitor X's Pro tier costs $349/mo.")).id
    async with client.sessions.create(scope=SCOPE, principal="agent:c") as s:
        ids["c"] = (await s.remember("Competitor X's Pro tier costs $399/mo.")).id
        await s.reflect("competitor pricing", persist=True)
        await s.get_state()
    return ids


async def test_replay_verify_switches_when_equal(make_client) -> None:
    client = make_client()
    await fill(client)
    service = await client.service()
    outcome = await blue_green_replay(service, verify=True)
    assert outcome.switched and outcome.live_hash == outcome.rebuilt_hash
    assert outcome.replay.events > 0 and outcome.replay.events_per_second > 0
    async with client.sessions.create(scope=SCOPE) as s:  # the old pool reads the new schema
        assert len((await s.recall("Pro tier", top_k=10)).items) == 4
        await s.remember("written after the switch")
        assert (await s.recall("after the switch")).items[0].content == "written after the switch"


async def test_replay_verify_names_an_injected_difference(make_client) -> None:
    client = make_client()
    ids = await fill(client)
    service = await client.service()
    async with service.pool.connection() as conn:
        await conn.execute(
            "UPDATE memories SET content = 'tampered' WHERE memory_id = %s", [ids["b"]]
        )
    outcome = await blue_green_replay(service, verify=True)
    assert not outcome.switched and outcome.live_hash != outcome.rebuilt_hash
    assert outcome.differences[0].table == "memories"
    sides = {(d.side, str(ids["b"]) in d.row) for d in outcome.differences}
    assert ("live only", True) in sides and ("rebuilt only", True) in sides
    assert any("tampered" in d.row for d in outcome.differences if d.side == "live only")
    async with service.pool.connection() as conn:  # nothing was switched: the live row is as it was
        cur = await conn.execute("SELECT content FROM memories WHERE memory_id = %s", [ids["b"]])
        assert (await cur.fetchone())[0] == "tampered"


async def test_history_lists_every_value_with_provenance(make_client) -> None:
    client = make_client()
    ids = await fill(client)
    async with client.sessions.create(scope=SCOPE) as s:
        entries = await s.history("competitor x", "pro_tier_price")
    by_memory = {e.memory_id: e for e in entries}
    assert set(by_memory) == {ids["a"], ids["b"], ids["c"]}
    a, c = by_memory[ids["a"]], by_memory[ids["c"]]
    assert (
        a.principal == "agent:a"
        and a.superseded_by == "$399/mo"
        and a.superseded_by_memory == ids["c"]
    )
    assert c.superseded_by is None and c.facts_event_id is not None
    assert by_memory[ids["b"]].scope == {**SCOPE, "agent": "w1"}, "each scope keeps its own chain"
    async with client.sessions.create(scope={**SCOPE, "agent": "w2"}) as s:
        assert {e.memory_id for e in await s.history("Competitor X")} == {ids["a"], ids["c"]}


async def test_audit_by_principal_scope_and_time(make_client) -> None:
    client = make_client()
    ids = await fill(client)
    service = await client.service()
    by_b = [r async for r in audit_log(service.log, service.pool, principal="agent:b")]
    assert [r.event_id for r in by_b] == [ids["b"]]
    assert by_b[0].type == "MemoryRecorded" and by_b[0].position.offset >= 0
    worker = [
        r
        async for r in audit_log(
            service.log, service.pool, scope={**SCOPE, "agent": "w1"}, within=True
        )
    ]
    assert {r.principal for r in worker} <= {"agent:b", "system:enricher"}
    assert ids["b"] in {r.event_id for r in worker}
    since = by_b[0].recorded_at
    later = [
        r async for r in audit_log(service.log, service.pool, principal="agent:c", since=since)
    ]
    assert {r.type for r in later} == {"MemoryRecorded", "ReflectionRecorded"}
    assert [
        r async for r in audit_log(service.log, service.pool, principal=f"nobody-{uuid.uuid4()}")
    ] == []


async def test_audit_until_a_time_reads_every_partition(make_client) -> None:
    """`until` ends each partition's reading at that time, not the whole audit."""
    client = make_client(extractor="none")
    service = await client.service()
    before, scopes = set(), [{**SCOPE, "agent": f"w{n}"} for n in range(8)]
    for scope in scopes:
        async with client.sessions.create(scope=scope, principal="agent:early") as s:
            before.add((await s.remember(f"{scope['agent']} was here first")).id)
    positions = {
        r.position.partition
        async for r in audit_log(service.log, service.pool, principal="agent:early")
    }
    assert len(positions) > 1  # the scopes spread over several partitions
    until = max(
        [r.recorded_at async for r in audit_log(service.log, service.pool, principal="agent:early")]
    )
    for scope in scopes:
        async with client.sessions.create(scope=scope, principal="agent:late") as s:
            await s.remember(f"{scope['agent']} came back later")
    found = [r async for r in audit_log(service.log, service.pool, until=until)]
    assert {r.event_id for r in found if r.principal == "agent:early"} == before
    assert all(r.recorded_at <= until for r in found)
    assert "agent:late" not in {r.principal for r in found}
