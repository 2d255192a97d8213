"""The seed page's code (../shared/seed/), pasted as written, for the tests that run it.

The supervisor + workers pattern with only `llm.research` supplied, and the conflict loop collecting
instead of printing; in-process and over HTTP, on either log backend.
"""

from __future__ import annotations

import asyncio
import types

from spectron import SpectronClient
from spectron.demo import research
from spectron.reasoning.extractive import ExtractiveReasoner

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


def conflicts(state) -> list[str]:
    """The seed page's conflict loop, verbatim but collecting instead of printing."""
    out = []
    for entity in state.entities:
        for attr in entity.attributes:
            if attr.superseded_by:
                out.append(
                    f"Conflict: {entity.name}.{attr.key} was {attr.value} → now {attr.superseded_by.value}"
                )
    return out
