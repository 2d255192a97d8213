"""The seed page's supervisor + workers code (tests/seed_support.py) on the embedded log."""

from __future__ import annotations

import uuid

from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.scope import is_visible
from tests.seed_support import (
    SUPERVISOR_SCOPE,
    CountingReasoner,
    seed_worker_memories,
    supervisor,
)


async def test_seed_supervisor_scenario(make_client) -> None:
    reasoner = CountingReasoner()
    client = make_client(reasoner=reasoner)
    await seed_worker_memories(client)
    await supervisor(client)

    service = await client.service()
    worker_calls = [(d, draft) for d, draft in reasoner.calls if "agent" in d.scope]
    assert len(worker_calls) == 3
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT memory_id, scope FROM memories")
        scope_of = {row[0]: row[1] for row in await cur.fetchall()}
    for data, draft in worker_calls:
        assert draft.sources, "a worker's reflection cites what it used"
        for source in draft.sources:
            assert is_visible(scope_of[source], data.scope), "cited a memory it cannot see"
        other_workers = {f"worker-{i}" for i in range(3)} - {data.scope["agent"]}
        assert not any(scope_of[s].get("agent") in other_workers for s in draft.sources)

    async with client.sessions.create(scope=SUPERVISOR_SCOPE) as session:
        full_context = await session.profile()
        synthesis = await session.reflect(
            query="What are the top-level conclusions across all worker findings? What is still uncertain?",
            persist=True,
        )
        later = await session.profile()
        found = await session.recall(query="executive summary", top_k=5)
    assert len(full_context.reflections) == 1
    assert full_context.reflections[0].query.startswith("Synthesise all research findings")
    assert [r.id for r in later.reflections][:2] == [synthesis.id, full_context.reflections[0].id]
    assert set(full_context.counts_by_scope) >= {
        f"agent=worker-{i}/org=acme/project=research-pipeline" for i in range(3)
    }
    assert any(item.memory_category == "reflection" for item in found.items)
    assert "Synthesise" in full_context.formatted or "executive" in full_context.formatted
    assert synthesis.summary and synthesis.persisted

    async with client.sessions.create(scope={"org": "acme", "project": "other"}) as sibling:
        elsewhere = await sibling.recall(query="executive summary", top_k=5)
        assert not any(item.memory_category == "reflection" for item in elsewhere.items)
        assert (await sibling.profile()).reflections == []
    async with client.sessions.create(scope={**SUPERVISOR_SCOPE, "agent": "worker-0"}) as worker:
        assert len((await worker.profile()).reflections) == 2, "parents' reflections are visible"


async def test_reflection_is_deterministic_and_replay_does_not_ask_the_reasoner(
    make_client,
) -> None:
    reasoner = CountingReasoner()
    client = make_client(reasoner=reasoner)
    scope = {"org": f"o{uuid.uuid4().hex[:6]}", "project": "p"}
    async with client.sessions.create(scope=scope) as s:
        await s.remember("Competitor X's Pro tier costs $299/mo.")
        await s.remember("Competitor X's Pro tier costs $349/mo.")
        first = await s.reflect("competitor pricing", persist=False)
        again = await s.reflect("competitor pricing", persist=False)
        persisted = await s.reflect("competitor pricing", persist=True)
    assert first.summary == again.summary == persisted.summary
    assert any("$299/mo → $349/mo" in doubt for doubt in first.uncertain)
    service = await client.service()
    await catch_up(service)
    before = await state_hash(service)
    calls = len(reasoner.calls)
    await rebuild(service)
    await catch_up(service)
    assert await state_hash(service) == before
    assert len(reasoner.calls) == calls, "replay must not call the reasoner"
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT summary FROM reflections WHERE reflection_id = %s", [persisted.id]
        )
        assert (await cur.fetchone())[0] == persisted.summary
