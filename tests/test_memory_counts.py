"""The per-scope memory counts profile reads (migration 0009) always equal counting the memories."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from projectors.replay import defer_indexes, restore_indexes
from spectron import service as service_module
from spectron.maintenance import blue_green_replay, catch_up
from spectron.service import MemoryService
from tests.migration_support import migrate_current, migrate_older

ORG = {"org": "acme"}
PROJECT = {**ORG, "project": "alpha"}
W1, W2 = {**PROJECT, "agent": "w1"}, {**PROJECT, "agent": "w2"}

_KEPT = """
SELECT scope_key, memory_category, principal, memories FROM memory_counts ORDER BY 1, 2, 3
"""
_COUNTED = """
SELECT scope_key, memory_category, principal, count(*) FROM memories GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""


async def _tables(service: MemoryService) -> tuple[list[Any], list[Any]]:
    """The kept counts and the memories counted one by one."""
    async with service.pool.connection() as conn:
        kept = await (await conn.execute(_KEPT)).fetchall()
        counted = await (await conn.execute(_COUNTED)).fetchall()
    return kept, counted


async def test_counts_follow_remembers_reflections_forgets_and_replay(make_client) -> None:
    client = make_client(extractor="none")
    for scope, texts in (
        (ORG, ["org policy: quarterly reviews"]),
        (PROJECT, ["alpha ships in May", "alpha budget is 40k"]),
        (W1, ["w1 met Dana", "w1 met Eve", "w1 met Frank"]),
        (W2, ["w2 prefers email"]),
    ):
        async with client.sessions.create(scope=scope) as session:
            for text in texts:
                await session.remember(
                    text, memory_category="episodic" if "met" in text else "knowledge"
                )
    async with client.sessions.create(scope=PROJECT) as supervisor:
        await supervisor.reflect("who did w1 meet?", persist=True)
    service = await client.service()
    await catch_up(service)
    kept, counted = await _tables(service)
    assert kept == counted and sum(row[3] for row in kept) == 8  # 7 memories and a reflection

    async with client.sessions.create(scope=PROJECT) as supervisor:
        profile = await supervisor.profile()
        past = await supervisor.profile(as_of=datetime.now(UTC))
        assert profile.counts_by_scope == past.counts_by_scope  # kept == counted one by one
        assert profile.counts_by_category == past.counts_by_category
        assert profile.counts_by_scope["agent=w1/org=acme/project=alpha"] == 3
        assert profile.counts_by_category["reflection"] == 1
        assert await supervisor.forget(scope=W2)  # w2's only memory: its count row goes
        [dana] = (await supervisor.recall("Dana", top_k=1, mode="keyword")).items
        await supervisor.forget(dana.id)
        profile = await supervisor.profile()
        assert "agent=w2/org=acme/project=alpha" not in profile.counts_by_scope
        assert profile.counts_by_scope["agent=w1/org=acme/project=alpha"] == 2
    async with client.sessions.create(scope=W1) as worker:  # a leaf sees itself and its parents
        assert set((await worker.profile()).counts_by_scope) == {
            "org=acme",
            "org=acme/project=alpha",
            "agent=w1/org=acme/project=alpha",
        }
    kept, counted = await _tables(service)
    assert kept == counted

    async with service.pool.connection() as conn:  # a record delivered again changes nothing
        await conn.execute(
            "INSERT INTO memories (memory_id, scope, scope_key, content, memory_category, metadata,"
            ' principal, client_time, recorded_at, partition, "offset")'
            " SELECT memory_id, scope, scope_key, content, memory_category, metadata, principal,"
            ' client_time, recorded_at, partition, "offset" FROM memories'
            " ON CONFLICT (memory_id) DO NOTHING"
        )
    assert await _tables(service) == (kept, counted)

    # the rebuilt projection (hashed with its counts) must equal the one kept incrementally
    outcome = await blue_green_replay(service, verify=True)
    assert outcome.switched, outcome.differences
    assert await _tables(service) == (kept, counted)
    # the replay counted once at the end; the triggers are back on for what follows
    async with client.sessions.create(scope=W2) as worker:
        await worker.remember("w2 is back")
        await worker.forget((await worker.remember("w2 leaves again")).id)
    await catch_up(service)  # remember returns once logged; the tables are read directly
    kept, counted = await _tables(service)
    assert kept == counted and ('{"agent":"w2","org":"acme","project":"alpha"}', "knowledge") in {
        row[:2] for row in kept
    }


async def test_a_store_projected_before_the_counts_is_counted_on_upgrade(
    database: str, tmp_path: Path
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await migrate_older(conn, 9, tmp_path)
        await conn.execute(
            "INSERT INTO memories (memory_id, scope, scope_key, content, memory_category, metadata,"
            ' principal, client_time, recorded_at, partition, "offset")'
            " SELECT gen_random_uuid(), s.scope, s.scope::text, 'text', 'note', '{}', p,"
            " now(), now(), 0, n"
            " FROM generate_series(1, 5) n,"
            ' (VALUES (\'{"org": "acme"}\'::jsonb), (\'{"org": "beta"}\'::jsonb)) s(scope),'
            " (VALUES ('agent:a'), ('agent:b')) q(p)"
        )
        assert "0009_memory_counts.sql" in await migrate_current(conn)
        kept = await (await conn.execute(_KEPT)).fetchall()
        assert kept == await (await conn.execute(_COUNTED)).fetchall()
        assert [row[3] for row in kept] == [5, 5, 5, 5]


async def test_profile_counts_one_by_one_while_a_replay_has_the_counts_deferred(
    make_client,
) -> None:
    """A replay that died with the triggers off: new memories are not in memory_counts, and
    profile must not read it until the next start recounts."""
    client = make_client(extractor="none")
    async with client.sessions.create(scope=W1) as worker:
        await worker.remember("w1 met Dana")
        service = await client.service()
        await catch_up(service)
        async with service.pool.connection() as conn:
            await conn.set_autocommit(True)
            await defer_indexes(conn)  # a replay that then died
        await worker.remember("w1 met Eve")
        await worker.remember("w1 met Frank")
        await catch_up(service)
        kept, counted = await _tables(service)
        assert sum(row[3] for row in kept) == 1 and sum(row[3] for row in counted) == 3
        profile = await worker.profile()
        assert profile.counts_by_scope == {"agent=w1/org=acme/project=alpha": 3}
        assert profile.counts_by_category == {"knowledge": 3}
        async with service.pool.connection() as conn:  # the next start finishes the replay
            await conn.set_autocommit(True)
            await restore_indexes(conn)
        assert await _tables(service) == (counted, counted)
        assert (await worker.profile()).counts_by_scope == profile.counts_by_scope
        await worker.remember("w1 met Grace")  # and the triggers count again
        await catch_up(service)
        kept, counted = await _tables(service)
        assert kept == counted and sum(row[3] for row in kept) == 4


async def test_a_profile_reads_its_state_counts_and_recent_memories_in_one_snapshot(
    make_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(extractor="none")
    async with client.sessions.create(scope=W1) as s:
        await s.remember("alpha ships in May")
        loaded = service_module.load_state

        async def then_a_batch_commits(conn: Any, *args: Any) -> Any:
            state = await loaded(conn, *args)
            await s.remember("alpha budget is 40k")  # projected before the counts are read
            assert (await s.recall("alpha budget", mode="keyword")).items
            return state

        monkeypatch.setattr(service_module, "load_state", then_a_batch_commits)
        profile = await s.profile()
    assert profile.counts_by_category == {"knowledge": 1}
    assert [item.content for item in profile.recent] == ["alpha ships in May"]
