"""One session test suite, run against both transports: in-process and HTTP (httpx over ASGI)."""

from __future__ import annotations

import math
import uuid

import pytest

from spectron import (
    InvalidCategory,
    InvalidContent,
    InvalidInput,
    InvalidMetadata,
    InvalidScope,
    LogPosition,
    MemoryNotFound,
    SessionClosed,
)
from spectron.models import MemoryItem, Profile, RecallResult, Reflection, RememberResult, State
from tests.http_support import fresh_org

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures
EXTRACTOR = "patterns"  # the HTTP service extracts facts like the in-process one


@pytest.fixture
def shared() -> dict[str, str]:
    """This test's own {org, project}."""
    return {"org": fresh_org(), "project": "market-research-q3"}


async def test_seed_shared_scope_snippet(client, shared) -> None:
    async with client.sessions.create(scope=shared) as session_a:
        written = await session_a.remember(
            content="Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
            memory_category="knowledge",
        )
    async with client.sessions.create(scope=shared) as session_b:
        context = await session_b.recall(query="recent competitor pricing changes", top_k=5)
    assert isinstance(written, RememberResult)
    assert isinstance(context, RecallResult)
    assert all(isinstance(item, MemoryItem) for item in context.items)
    assert context.items[0].id == written.id
    assert context.items[0].scope == shared
    assert "Competitor X launched" in context.formatted


async def test_worker_sees_parents_and_own_never_sibling(client, shared) -> None:
    org = {"org": shared["org"]}
    w1, w2 = {**shared, "agent": "w1"}, {**shared, "agent": "w2"}
    for scope, note in [
        (shared, "Shared: pricing review due Friday."),
        (org, "Org: pricing needs CFO sign-off."),
        (w1, "W1: pricing page changed."),
        (w2, "W2: pricing survey is in."),
    ]:
        async with client.sessions.create(scope=scope) as session:
            await session.remember(note)
    async with client.sessions.create(scope=w1) as session:
        seen = {i.content[:3] for i in (await session.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:"}
    async with client.sessions.create(scope=shared) as session:
        seen = {i.content[:3] for i in (await session.recall("pricing", top_k=20)).items}
    assert seen == {"Sha", "Org", "W1:", "W2:"}


async def test_category_and_metadata_filters(client, shared) -> None:
    async with client.sessions.create(scope=shared) as session:
        await session.remember(
            "Customer segment 'enterprise' values compliance features most.",
            memory_category="knowledge",
            metadata={"source": "customer-interview-2024-q3", "agent": "interview-agent"},
        )
        await session.remember("Enterprise customers prefer annual billing.", "preference")
        preferences = await session.recall(
            "enterprise customers", top_k=10, memory_category="preference"
        )
        by_source = await session.recall(
            "enterprise", top_k=10, metadata={"source": "customer-interview-2024-q3"}
        )
        keyword = await session.recall("annual billing", mode="keyword", consistency="strong")
    assert [i.memory_category for i in preferences.items] == ["preference"]
    assert [i.metadata["agent"] for i in by_source.items] == ["interview-agent"]
    assert keyword.items[0].content.startswith("Enterprise customers prefer")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"content": ""}, InvalidContent),
        ({"content": 42}, InvalidContent),
        ({"content": "ok", "memory_category": "gossip"}, InvalidCategory),
        ({"content": "ok", "metadata": ["a"]}, InvalidMetadata),
        ({"content": "ok", "metadata": {"x": math.nan}}, InvalidMetadata),
        ({"content": "ok", "metadata": {"tags": {1, 2}}}, InvalidMetadata),
    ],
)
async def test_bad_input_raises_the_same_typed_error(client, shared, kwargs, error) -> None:
    async with client.sessions.create(scope=shared) as session:
        with pytest.raises(error):
            await session.remember(**kwargs)
        with pytest.raises(InvalidInput):
            await session.recall("x", top_k=0)


@pytest.mark.parametrize("scope", ["acme", {}, {"org": 1}, {"or g": "x"}])
async def test_bad_scope_raises_invalid_scope(client, scope) -> None:
    with pytest.raises(InvalidScope):
        client.sessions.create(scope=scope)


async def test_closed_session_refuses_work(client, shared) -> None:
    session = await client.sessions.create(scope=shared)
    await session.remember("Before closing.")
    await session.close()
    with pytest.raises(SessionClosed):
        await session.recall("closing")


async def test_state_supersession_and_scope_bounds(client, shared) -> None:
    facts = [{"entity": {"type": "Competitor", "name": "X"}, "key": "price", "value": "$10"}]
    later = [{**facts[0], "value": "$20"}]
    async with client.sessions.create(scope=shared) as session:
        await session.remember("Competitor X costs $10.", facts=facts)
        await session.remember("Competitor X costs $20.", facts=later)
        state = await session.get_state()
        below = await session.get_state(scope={**shared, "agent": "w1"})
        with pytest.raises(InvalidScope):
            await session.get_state(scope={"org": shared["org"]})
    assert isinstance(state, State)
    competitor = state.entity("Competitor", "X")
    assert competitor is not None and competitor.current == {"price": "$20"}
    [old] = [a for a in competitor.attributes if a.superseded_by is not None]
    assert (old.value, old.superseded_by.value) == ("$10", "$20")
    assert below.entity("Competitor", "X") is not None


async def test_reflect_persist_and_profile(client, shared) -> None:
    async with client.sessions.create(scope={**shared, "agent": "w1"}) as worker:
        await worker.remember("Competitor X raised prices by 20% in Q2.")
        draft = await worker.reflect(query="Summarise findings about pricing", persist=False)
    async with client.sessions.create(scope=shared) as supervisor:
        synthesis = await supervisor.reflect(query="What changed in pricing?", persist=True)
        profile = await supervisor.profile()
    assert isinstance(draft, Reflection) and not draft.persisted and draft.sources
    assert synthesis.persisted and synthesis.id is not None
    assert isinstance(profile, Profile)
    assert [r.id for r in profile.reflections] == [synthesis.id]
    assert sum(profile.counts_by_category.values()) >= 1


async def test_register_entity_type(client, shared) -> None:
    async with client.sessions.create(scope=shared) as session:
        assert (
            await session.register_entity_type({"name": "Vendor", "triggers": ["vendor"]}) is None
        )
        with pytest.raises(InvalidInput):
            await session.register_entity_type({"name": "lowercase"})


async def test_forget_history_and_as_of(client, shared) -> None:
    facts = [{"entity": {"type": "Competitor", "name": "X"}, "key": "price", "value": "$10"}]
    async with client.sessions.create(scope=shared) as session:
        first = await session.remember("Competitor X costs $10.", facts=facts)
        second = await session.remember(
            "Competitor X costs $20.", facts=[{**facts[0], "value": "$20"}]
        )
        then = LogPosition(first.partition, first.offset)
        assert (await session.get_state(as_of=then)).entity("Competitor", "X").current == {
            "price": "$10"
        }
        past = await session.recall("Competitor X costs", as_of=first.recorded_at)
        assert [item.id for item in past.items] == [first.id]
        assert (await session.profile(as_of=then)).state.entity("Competitor", "X") is not None
        entries = await session.history("X", "price")
        assert [(e.value, e.superseded_by) for e in entries] == [("$10", "$20"), ("$20", None)]

        result = await session.forget(second.id, reason="wrong figure")
        assert [str(i) for i in result.forgotten] == [str(second.id)]
        assert [e.value for e in await session.history("X", "price")] == ["$10"]
        assert [i.id for i in (await session.recall("Competitor X costs")).items] == [first.id]
        with pytest.raises(MemoryNotFound):
            await session.forget(uuid.uuid4())
        with pytest.raises(InvalidInput):
            await session.forget(where={"nonsense": 1})
