"""`spectron demo`: the seed page's shared-scope scenario, run on the embedded default."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

from spectron.client import SpectronClient
from spectron.models import RecallResult

SHARED_SCOPE = {"org": "acme", "project": "market-research-q3"}


def _show(console: Console, title: str, result: RecallResult) -> None:
    console.print(Panel(result.formatted, title=title, expand=False))


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
