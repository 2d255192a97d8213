"""The seed's shared-scope scenario, visibility between worker scopes, and filters (embedded log)."""

from __future__ import annotations

import pytest

SHARED = {"org": "acme", "project": "market-research-q3"}


async def test_seed_shared_scope_snippet(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as a:
        await a.remember(
            content="Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
            memory_category="knowledge",
        )
        await a.remember(content="The office coffee machine is broken again.")
    async with client.sessions.create(scope=SHARED) as b:
        ctx = await b.recall(query="recent competitor pricing changes", top_k=5)
    assert "Competitor X" in ctx.items[0].content
    assert ctx.items[0].scope == SHARED
    assert ctx.items[0].embedded
    assert "Competitor X launched" in ctx.formatted
    assert ctx.pending == 0


async def test_worker_sees_parent_and_own_never_sibling(make_client) -> None:
    client = make_client()
    w1 = {**SHARED, "agent": "w1"}
    w2 = {**SHARED, "agent": "w2"}
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("Shared: pricing review is due on Friday.")
    async with client.sessions.create(scope={"org": "acme"}) as s:
        await s.remember("Org: pricing decisions need CFO sign-off.")
    async with client.sessions.create(scope=w1) as s:
        await s.remember("W1: pricing page of Competitor X changed.")
    async with client.sessions.create(scope=w2) as s:
        await s.remember("W2: pricing survey results are in.")
    async with client.sessions.create(scope={"org": "other"}) as s:
        await s.remember("Other org: pricing is secret.")

    async with client.sessions.create(scope=w1) as s:
        seen = {item.content[:3] for item in (await s.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:"}
    async with client.sessions.create(scope=SHARED) as s:
        seen = {item.content[:3] for item in (await s.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:", "W2:"}


async def test_category_and_metadata_filters(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember(
            "Customer segment 'enterprise' values compliance features most.",
            memory_category="knowledge",
            metadata={"source": "customer-interview-2024-q3", "agent": "interview-agent"},
        )
        await s.remember(
            "Enterprise customers prefer annual billing.", memory_category="preference"
        )
        only_pref = await s.recall("enterprise customers", top_k=10, memory_category="preference")
        by_source = await s.recall(
            "enterprise", top_k=10, metadata={"source": "customer-interview-2024-q3"}
        )
    assert [i.memory_category for i in only_pref.items] == ["preference"]
    assert len(by_source.items) == 1
    assert by_source.items[0].metadata["agent"] == "interview-agent"


async def test_keyword_recall_matches_any_term(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("Churn rose among SMB accounts.")
        result = await s.recall("why did churn go up last quarter", top_k=5, mode="keyword")
    assert [i.content for i in result.items] == ["Churn rose among SMB accounts."]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
async def test_modes_return_visible_only(make_client, mode: str) -> None:
    client = make_client()
    async with client.sessions.create(scope={**SHARED, "agent": "w2"}) as s:
        await s.remember("Sibling secret about pricing.")
    async with client.sessions.create(scope={**SHARED, "agent": "w1"}) as s:
        result = await s.recall("pricing secret", top_k=5, mode=mode)  # type: ignore[arg-type]
    assert result.items == []
