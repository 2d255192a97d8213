"""The seed page's supervisor + workers code, pasted as written, with only `llm.research` supplied."""

from __future__ import annotations

import asyncio
import types
import uuid

from spectron import SpectronClient
from spectron.demo import research
from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.reasoning.extractive import ExtractiveReasoner
from spectron.scope import is_visible

SUPERVISOR_SCOPE = {"org": "acme", "project": "research-pipeline"}
SEEDED = {
    "pricing trends": "Competitor X raised prices by 20% in Q2.",
    "competitor features": "Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
    "customer sentiment": "The enterprise customer segment prioritises SOC2 compliance over cost.",
}


llm = types.SimpleNamespace(research=research)  # the only thing the seed code leaves to us


# ---- pasted from the seed page (../shared/seed/), unchanged ----
# fmt: off
async def run_worker(topic: str, worker_id: str, client: SpectronClient) -> str:
    worker_scope = {**SUPERVISOR_SCOPE, "agent": worker_id}
    async with client.sessions.create(scope=worker_scope) as session:
        # Worker researches its topic
        context = await session.recall(query=topic, top_k=5)
        findings = await llm.research(topic, context.formatted)

        # Worker stores findings in its own scope
        await session.remember(findings, memory_category="knowledge")

        # Return a summary for the supervisor
        reflection = await session.reflect(
            query=f"Summarise findings about {topic}",
            persist=False,
        )
        return reflection.summary


async def supervisor(client: SpectronClient):
    topics = ["pricing trends", "competitor features", "customer sentiment"]

    # Run workers concurrently
    results = await asyncio.gather(*[
        run_worker(topic, f"worker-{i}", client)
        for i, topic in enumerate(topics)
    ])

    # Supervisor aggregates findings into shared scope
    async with client.sessions.create(scope=SUPERVISOR_SCOPE) as session:
        for topic, finding in zip(topics, results):  # noqa: B905
            await session.remember(
                content=f"[{topic}] {finding}",
                memory_category="knowledge",
            )

        # Supervisor synthesises and stores a final report
        await session.reflect(
            query="Synthesise all research findings into a coherent executive summary.",
            persist=True,
        )
# fmt: on
# ---- end of the pasted code ----


class CountingReasoner(ExtractiveReasoner):
    """Records every call, so a test can see which memories each worker's reflection used."""

    def __init__(self) -> None:
        self.calls: list = []

    def reflect(self, data):  # type: ignore[no-untyped-def]
        draft = super().reflect(data)
        self.calls.append((data, draft))
        return draft


async def seed_worker_memories(client: SpectronClient) -> None:
    for i, note in enumerate(SEEDED.values()):
        async with client.sessions.create(scope={**SUPERVISOR_SCOPE, "agent": f"worker-{i}"}) as s:
            await s.remember(note)


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
