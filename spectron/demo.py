"""`spectron demo`: the seed page's shared-scope scenario, run on the embedded default."""

from __future__ import annotations

import asyncio
import types

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from spectron.client import SpectronClient
from spectron.models import RecallResult
from spectron.prompt_text import QUOTE

SHARED_SCOPE = {"org": "acme", "project": "market-research-q3"}
SUPERVISOR_SCOPE = {"org": "acme", "project": "research-pipeline"}
TOPICS = ["pricing trends", "competitor features", "customer sentiment"]
# what each worker already knows when the scenario starts
WORKER_NOTES = [
    "Competitor X raised prices by 20% in Q2.",
    "Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
    "The enterprise customer segment prioritises SOC2 compliance over cost.",
]


CONTENT = "    " + QUOTE  # how a recalled memory's text lines begin in `formatted`


async def research(topic: str, context: str) -> str:
    """Deterministic stand-in for the seed's `llm.research`: restates the recalled memories."""
    found = [line[len(CONTENT) :] for line in context.splitlines() if line.startswith(CONTENT)]
    return f"Findings about {topic}. " + (" ".join(found[:2]) if found else "Nothing known yet.")


llm = types.SimpleNamespace(research=research)


def _show(console: Console, title: str, result: RecallResult) -> None:
    console.print(Panel(Text(result.formatted), title=title, expand=False))


async def run_shared_scope_demo(client: SpectronClient, console: Console) -> None:
    """Agent A writes, agent B (same scope) recalls; workers see parents and themselves, never siblings."""
    console.rule("Shared scope: all agents read and write one project scope")
    async with client.sessions.create(scope=SHARED_SCOPE) as session_a:
        await session_a.remember(
            content="Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
            memory_category="knowledge",
        )
        await session_a.remember(
            content="Customer segment 'enterprise' values compliance features most.",
            memory_category="knowledge",
            metadata={"source": "customer-interview-2024-q3", "agent": "interview-agent"},
        )
    console.print("Agent A (data collection) remembered 2 findings at", SHARED_SCOPE)

    async with client.sessions.create(scope=SHARED_SCOPE) as session_b:
        context = await session_b.recall(query="recent competitor pricing changes", top_k=5)
    _show(console, "Agent B (analysis) recalls 'recent competitor pricing changes'", context)

    console.rule("Supervisor + workers: each worker in its own agent scope")
    for worker, note in (
        ("worker-1", "Competitor X raised prices by 20% in Q2."),
        ("worker-2", "Competitor Y is rumoured to cut its SMB price."),
    ):
        async with client.sessions.create(scope={**SHARED_SCOPE, "agent": worker}) as session:
            await session.remember(note, memory_category="knowledge")
        console.print(f"{worker} remembered: {note}")

    async with client.sessions.create(scope={**SHARED_SCOPE, "agent": "worker-1"}) as session:
        seen = await session.recall(query="competitor pricing", top_k=10)
    _show(console, "worker-1 sees its own and the project's memory, never worker-2's", seen)

    async with client.sessions.create(scope=SHARED_SCOPE) as session:
        seen = await session.recall(query="competitor pricing", top_k=10)
    _show(console, "the supervisor at the project scope sees every worker", seen)


async def run_worker(topic: str, worker_id: str, client: SpectronClient) -> str:
    """The seed's worker: recall, research, remember, reflect without persisting."""
    worker_scope = {**SUPERVISOR_SCOPE, "agent": worker_id}
    async with client.sessions.create(scope=worker_scope) as session:
        context = await session.recall(query=topic, top_k=5)
        findings = await llm.research(topic, context.formatted)
        await session.remember(findings, memory_category="knowledge")
        reflection = await session.reflect(query=f"Summarise findings about {topic}", persist=False)
        return reflection.summary


async def run_supervisor_demo(client: SpectronClient, console: Console) -> None:
    """The seed's supervisor scenario: concurrent workers, aggregation, persisted synthesis."""
    console.rule("Supervisor + workers: reflection and profile")
    for i, note in enumerate(WORKER_NOTES):
        async with client.sessions.create(scope={**SUPERVISOR_SCOPE, "agent": f"worker-{i}"}) as s:
            await s.remember(note)
    results = await asyncio.gather(
        *[run_worker(topic, f"worker-{i}", client) for i, topic in enumerate(TOPICS)]
    )
    for topic, summary in zip(TOPICS, results, strict=True):
        console.print(Panel(Text(summary), title=f"worker reflection: {topic}", expand=False))
    async with client.sessions.create(scope=SUPERVISOR_SCOPE) as session:
        for topic, finding in zip(TOPICS, results, strict=True):
            await session.remember(content=f"[{topic}] {finding}", memory_category="knowledge")
        await session.reflect(
            query="Synthesise all research findings into a coherent executive summary.",
            persist=True,
        )
        full_context = await session.profile()
        console.print(
            Panel(Text(full_context.formatted), title="supervisor profile()", expand=False)
        )
        synthesis = await session.reflect(
            query="What are the top-level conclusions across all worker findings?"
            " What is still uncertain?",
            persist=True,
        )
    console.print(
        Panel(Text(synthesis.summary), title="supervisor synthesis (persisted)", expand=False)
    )
