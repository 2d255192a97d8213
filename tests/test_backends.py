"""Issue 3 and 4 acceptance on both log backends: the same assertions, embedded and on Kafka."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import orjson

from spectron.maintenance import catch_up, rebuild, state_hash
from tests.seed_support import CountingReasoner, conflicts, seed_worker_memories, supervisor
from tests.storage_support import dump_database, raw_log


def unique(scope: dict[str, str]) -> dict[str, str]:
    """The scope inside an org of its own: the Kafka deployment's database is shared."""
    return {**scope, "org": f"{scope['org']}-{uuid.uuid4().hex[:8]}"}


async def test_seed_entity_examples(make_backend_client) -> None:
    client = make_backend_client()
    shared = unique({"org": "acme", "project": "market-research-q3"})
    async with client.sessions.create(scope=shared) as s:
        await s.remember("The enterprise customer segment prioritises SOC2 compliance over cost.")
    async with client.sessions.create(scope=shared, principal="agent:a") as a:
        await a.remember("Competitor X's Pro tier costs $299/mo.")
    async with client.sessions.create(scope=shared, principal="agent:b") as b:
        await b.remember("Competitor X's Pro tier costs $349/mo.")
    async with client.sessions.create(scope=shared) as s:
        state = await s.get_state(scope=shared)
    segment = state.entity("CustomerSegment", "enterprise")
    assert segment is not None and segment.current["top_priority"] == "SOC2 compliance"
    assert [(r.subject, r.predicate, r.object) for r in segment.relations] == [
        ("enterprise", "values", "compliance_features")
    ]
    assert conflicts(state) == ["Conflict: Competitor X.pro_tier_price was $299/mo → now $349/mo"]


async def test_concurrent_writers_chain_in_log_order_and_replay_equal(make_backend_client) -> None:
    client = make_backend_client()
    shared = unique({"org": "acme", "project": "p"})

    async def agent(n: int) -> None:
        async with client.sessions.create(scope=shared, principal=f"agent:{n}") as s:
            for round_ in range(2):
                await s.remember(f"Competitor Z costs ${100 + 10 * n + round_}/mo.")

    await asyncio.gather(*(agent(n) for n in range(8)))
    async with client.sessions.create(scope=shared) as s:
        state = await s.get_state()
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT memory_id FROM memories WHERE scope = %s::jsonb"
            ' ORDER BY recorded_at, partition, "offset"',
            [orjson.dumps(shared).decode()],
        )
        log_order = [row[0] for row in await cur.fetchall()]
    [entity] = [e for e in state.entities if e.name == "Competitor Z"]
    by_memory = {a.memory_id: a for a in entity.attributes}
    chain = [by_memory[m] for m in log_order]
    assert len(chain) == 16
    for earlier, later in itertools.pairwise(chain):
        assert earlier.superseded_by is not None
        assert earlier.superseded_by.memory_id == later.memory_id
    await catch_up(service)
    before = await state_hash(service)
    report = await rebuild(service)
    await catch_up(service)
    assert report.events > 0
    assert await state_hash(service) == before


async def test_seed_supervisor_code(make_backend_client, monkeypatch) -> None:
    reasoner = CountingReasoner()
    client = make_backend_client(reasoner=reasoner)
    scope = unique({"org": "acme", "project": "research-pipeline"})
    # the pasted seed code reads its module's SUPERVISOR_SCOPE: give this run its own org
    monkeypatch.setattr("tests.seed_support.SUPERVISOR_SCOPE", scope)
    await seed_worker_memories(client)
    await supervisor(client)
    async with client.sessions.create(scope=scope) as session:
        profile = await session.profile()
        found = await session.recall(query="executive summary", top_k=5)
    assert len(profile.reflections) == 1
    assert any(item.memory_category == "reflection" for item in found.items)
    for data, draft in reasoner.calls:
        if "agent" in data.scope:
            assert all(
                item.scope.get("agent") in (None, data.scope["agent"]) for item in data.memories
            )
            assert draft.sources


async def test_crypto_shredded_scope_is_gone_from_log_and_database(make_backend_client) -> None:
    client = make_backend_client(extractor="patterns")
    shared = unique({"org": "acme", "project": "shred"})
    worker = {**shared, "agent": "w1"}
    secret = f"Quokka-{uuid.uuid4().hex[:10]}"
    async with client.sessions.create(scope=worker) as w:
        await w.remember(f"Competitor Q's launch codename is {secret}.")
        await w.remember(f"Competitor Q's price is $777/mo, says {secret}.")
    async with client.sessions.create(scope=shared) as supervisor:
        assert secret in (await supervisor.recall("launch codename", top_k=5)).formatted
        service = await client.service()
        await catch_up(service)  # the enrichment output (vectors, facts) is in the log too
        assert secret.encode() not in await raw_log(service)
        result = await supervisor.forget(scope=worker)
        assert result.count == 2
        assert secret not in (await supervisor.recall("launch codename Q", top_k=10)).formatted
        assert "$777" not in (await supervisor.get_state()).formatted
    await catch_up(service)
    assert secret.encode() not in await raw_log(service)
    assert secret.encode() not in dump_database(service.settings.database_url or "")
    before = await state_hash(service)
    report = await rebuild(service)
    await catch_up(service)
    assert report.events > 0
    assert await state_hash(service) == before
