"""Forgetting on an immutable log: crypto-shredded content is gone from the log, the projections
and a database dump; replay and the hash chain still hold."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from spectron.errors import InvalidInput, MemoryNotFound
from spectron.history import audit_log
from spectron.maintenance import blue_green_replay, catch_up, state_hash
from tests.storage_support import dump_database, raw_log

SHARED = {"org": "acme", "project": "forget"}
SECRET = "Zanzibar-Quokka-7731"


async def test_shredded_scope_leaves_no_plaintext_anywhere(make_client, database) -> None:
    client = make_client(extractor="patterns")
    worker = {**SHARED, "agent": "w1"}
    async with client.sessions.create(scope=worker) as w:
        await w.remember(f"The codename of Competitor X's launch is {SECRET}.")
        await w.remember(f"Competitor X's price is $299/mo ({SECRET}).")
    async with client.sessions.create(scope={**SHARED, "agent": "w2"}) as other:
        kept = await other.remember("Competitor Y's price is $199/mo.")
    service = await client.service()
    await catch_up(service)
    assert SECRET.encode() not in await raw_log(service)  # sealed from the start
    hash_before = await state_hash(service)

    async with client.sessions.create(scope=SHARED) as supervisor:
        assert SECRET in (await supervisor.recall("codename launch", top_k=5)).formatted
        result = await supervisor.forget(scope=worker, reason="customer request")
        assert result.count == 2 and len(result.tombstones) == 1
        ctx = await supervisor.recall("codename launch Competitor X", top_k=10)
        assert SECRET not in ctx.formatted
        assert kept.id in {item.id for item in ctx.items} or "Competitor Y" in ctx.formatted
        state = await supervisor.get_state()
        assert SECRET not in state.formatted
        assert "$299" not in state.formatted  # the facts derived from it went too
    async with client.sessions.create(scope=worker) as w:
        assert (await w.recall("codename", top_k=5)).items == []

    assert await state_hash(service) != hash_before
    assert SECRET.encode() not in await raw_log(service)
    dump = dump_database(database)
    assert b"Competitor Y" in dump  # the dump does hold content: of what was not forgotten
    assert SECRET.encode() not in dump and b"299/mo" not in dump

    live = await state_hash(service)
    outcome = await blue_green_replay(service, verify=True)
    assert outcome.switched, outcome.differences
    assert await state_hash(service) == live
    verified = await service.log.verify_chain()
    checked, breaks = verified.checked, verified.breaks
    assert checked > 0 and breaks == []


async def test_forget_one_memory_and_its_facts(make_client) -> None:
    client = make_client(extractor="patterns")
    async with client.sessions.create(scope=SHARED) as s:
        old = await s.remember("Competitor X's Pro tier costs $299/mo.")
        new = await s.remember("Competitor X's Pro tier costs $349/mo.")
        state = await s.get_state()
        [price] = [a for e in state.entities for a in e.attributes if a.value == "$299/mo"]
        assert price.superseded_by is not None

        result = await s.forget(new.id)
        assert result.forgotten == [uuid.UUID(str(new.id))]
        state = await s.get_state()
        values = [(a.value, a.superseded_by) for e in state.entities for a in e.attributes]
        assert values == [("$299/mo", None)]  # the chain is relinked: the old value is current
        assert (await s.forget(new.id)).forgotten == []  # forgetting twice is a no-op
        assert old.id in {item.id for item in (await s.recall("Pro tier", top_k=5)).items}

    service = await client.service()
    outcome = await blue_green_replay(service, verify=True)
    assert outcome.switched, outcome.differences


async def test_forget_is_confined_to_the_session_scope(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as parent:
        mine = await parent.remember("A project-level memory.")
    async with client.sessions.create(scope={**SHARED, "agent": "w1"}) as worker:
        with pytest.raises(MemoryNotFound):
            await worker.forget(mine.id)  # a worker cannot erase its parent's memory
        with pytest.raises(InvalidInput):
            await worker.forget(scope=SHARED)
        with pytest.raises(InvalidInput):
            await worker.forget(where={"categroy": "knowledge"})
        with pytest.raises(InvalidInput):
            await worker.forget("not-a-uuid")
    async with client.sessions.create(scope=SHARED) as parent:
        assert mine.id in {item.id for item in (await parent.recall("project-level")).items}


async def test_forget_where_filters(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as s:
        note = await s.remember("Scratch note about pricing.", memory_category="episodic")
        fact = await s.remember("Durable fact about pricing.", memory_category="knowledge")
        result = await s.forget(where={"memory_category": "episodic"})
        assert [str(i) for i in result.forgotten] == [str(note.id)]
        ids = {item.id for item in (await s.recall("pricing", top_k=5)).items}
        assert fact.id in ids and note.id not in ids
        with pytest.raises(InvalidInput):
            await s.forget(where={"memory_category": "nonsense"})
        # a time without a zone would be read in the database server's zone: refused
        with pytest.raises(InvalidInput, match="time zone"):
            await s.forget(where={"before": "2026-11-20T10:00:00"})
        with pytest.raises(InvalidInput, match="time zone"):
            await s.forget(where={"after": datetime(2026, 11, 20)})
        assert fact.id in {item.id for item in (await s.recall("pricing", top_k=5)).items}


async def test_a_forget_filter_is_logged_without_its_metadata_values(make_client) -> None:
    """The tombstone stays in the log in the clear: a metadata value may be what is forgotten."""
    client = make_client(extractor="none")
    async with client.sessions.create(scope=SHARED) as s:
        gone = await s.remember("Contact for the deal.", metadata={"email": "alice@example.com"})
        result = await s.forget(where={"metadata": {"email": "alice@example.com"}})
        assert [str(i) for i in result.forgotten] == [str(gone.id)]
    service = await client.service()
    types = [record.type async for record in audit_log(service.log, service.pool)]
    assert types.count("MemoriesForgotten") == 1
    log = await raw_log(service)
    assert b"alice@example.com" not in log and b"<withheld>" in log
    assert b"alice@example.com" not in dump_database(service.settings.database_url or "")
