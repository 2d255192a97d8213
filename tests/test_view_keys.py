"""Recall names a view by its scope keys when they are few: same answers, same visibility."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg.types.json import Jsonb

from spectron import recall
from spectron.recall import search, view_keys
from spectron.scope import scope_key

ORG = {"org": "keys"}
TEAM = {"org": "keys", "team": "red"}
ME = {"org": "keys", "team": "red", "agent": "me"}
SIBLING = {"org": "keys", "team": "red", "agent": "sibling"}
OTHER_TEAM = {"org": "keys", "team": "blue"}
QUERIES = ["harbour crane schedule", "crane", "who moved the schedule", "nothing matches zzq"]


async def remember_tree(client: Any) -> None:
    """A few memories at every level of a small tree, some sharing words."""
    for scope in (ORG, TEAM, ME, SIBLING, OTHER_TEAM):
        session = client.sessions.create(scope=scope)
        name = "-".join(str(v) for v in scope.values())
        for n in range(6):
            await session.remember(f"{name} note {n}: the harbour crane schedule moved to {n}pm.")
        await session.recall("warm up", top_k=1)


async def both_ways(
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    scope: dict[str, str],
    query: str,
    vector: Any,
    **options: Any,
) -> list[Any]:
    """Recall by the view's keys; asserts that testing each row's scope answers the same."""
    by_keys = await search(conn, scope, query, vector, top_k=8, **options)
    monkeypatch.setattr(recall, "VIEW_KEYS_MAX", 0)
    by_scopes = await search(conn, scope, query, vector, top_k=8, **options)
    monkeypatch.undo()
    assert [(i.id, i.score) for i in by_keys] == [(i.id, i.score) for i in by_scopes]
    return by_keys


def keys(*scopes: dict[str, str]) -> list[str]:
    return sorted(scope_key(scope) for scope in scopes)


async def test_a_view_is_named_by_the_keys_it_holds(make_client) -> None:
    client = make_client(extractor="none")
    await remember_tree(client)
    service = await client.service()
    async with service.pool.connection() as conn:
        assert await view_keys(conn, ME) == keys(ORG, TEAM, ME)
        assert await view_keys(conn, TEAM) == keys(ORG, TEAM, ME, SIBLING)
        assert await view_keys(conn, ORG) == keys(ORG, TEAM, ME, SIBLING, OTHER_TEAM)
        assert await view_keys(conn, {"org": "keys", "team": "none yet"}) == keys(ORG)
        assert await view_keys(conn, {"org": "elsewhere"}) == []


async def test_too_many_keys_or_deferred_counts_fall_back_to_scopes(
    make_client, monkeypatch
) -> None:
    client = make_client(extractor="none")
    await remember_tree(client)
    service = await client.service()
    async with service.pool.connection() as conn:
        monkeypatch.setattr(recall, "VIEW_KEYS_MAX", 4)
        assert await view_keys(conn, TEAM) == keys(ORG, TEAM, ME, SIBLING)
        assert await view_keys(conn, ORG) is None
        monkeypatch.undo()
        async with conn.transaction(force_rollback=True):  # as a replay that deferred the counts
            await conn.execute(
                "INSERT INTO projection_meta (key, value) VALUES (%s, '')", [recall.COUNTS_DEFERRED]
            )
            assert await view_keys(conn, ME) is None


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
async def test_keys_and_scopes_recall_the_same(make_client, monkeypatch, mode) -> None:
    """Each scope's answers by keys equal those of testing every row's scope, siblings unseen."""
    client = make_client(extractor="none")
    await remember_tree(client)
    service = await client.service()
    answered = 0
    async with service.pool.connection() as conn:
        for scope in (ME, TEAM, ORG, SIBLING):
            for query in QUERIES:
                vector = service.embedder.embed_query(query)
                by_keys = await both_ways(conn, monkeypatch, scope, query, vector, mode=mode)
                if scope == ME:
                    assert all(item.scope in (ORG, TEAM, ME) for item in by_keys)
                answered += bool(by_keys)
    assert answered >= 12  # every scope answers its matching queries


async def test_the_keys_and_the_query_read_one_snapshot(make_client, monkeypatch) -> None:
    """A batch committing between the two statements shows wholly or not at all: never its
    memory in a known scope without its memory in a new one."""
    client = make_client(extractor="none")
    await remember_tree(client)
    service = await client.service()
    newcomer = {**TEAM, "agent": "newcomer"}
    word = "zebrafinch"
    known_keys = recall.view_keys

    async def keys_then_a_batch_commits(conn: Any, scope: dict[str, str]) -> list[str] | None:
        found = await known_keys(conn, scope)
        async with service.pool.connection() as other, other.transaction():
            for target in (newcomer, TEAM):  # a new scope, a known one: one transaction
                await other.execute(
                    "INSERT INTO memories (memory_id, scope, scope_key, content, memory_category,"
                    ' metadata, principal, client_time, recorded_at, partition, "offset")'
                    " SELECT gen_random_uuid(), %s, %s, %s || ' ' || content, memory_category,"
                    ' metadata, principal, client_time, recorded_at, partition, "offset" + 1000'
                    " FROM memories WHERE scope_key = %s LIMIT 1",
                    [Jsonb(target), scope_key(target), word, scope_key(TEAM)],
                )
        return found

    monkeypatch.setattr(recall, "view_keys", keys_then_a_batch_commits)
    async with service.pool.connection() as conn:
        during = await search(conn, TEAM, word, None, top_k=8, mode="keyword")
        monkeypatch.undo()
        after = await search(conn, TEAM, word, None, top_k=8, mode="keyword")
    assert sorted(str(i.scope) for i in after) == sorted(str(s) for s in (newcomer, TEAM))
    assert during == []  # the query saw what the keys saw: the batch not yet


async def test_keys_and_scopes_agree_under_filters_and_on_an_empty_view(
    make_client, monkeypatch
) -> None:
    """Category, metadata and as-of narrow both paths alike; a view with no keys finds nothing."""
    client = make_client(extractor="none")
    await remember_tree(client)
    for scope in (ME, SIBLING, TEAM):
        session = client.sessions.create(scope=scope)
        await session.remember(
            "the crane schedule is owned by the harbour master",
            memory_category="preference",
            metadata={"source": "desk"},
        )
        await session.recall("warm up", top_k=1)  # read-your-writes: projected before the searches
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY recorded_at) FROM memories"
        )
        middle = (await cur.fetchone())[0]
        filters: list[dict[str, Any]] = [
            {"memory_category": "preference"},
            {"metadata": {"source": "desk"}},
            {"as_of": middle},
        ]
        for scope in (ME, TEAM, {"org": "elsewhere"}):
            for narrowing in filters:
                vector = service.embedder.embed_query("crane schedule")
                by_keys = await both_ways(
                    conn, monkeypatch, scope, "crane schedule", vector, **narrowing
                )
                if scope == {"org": "elsewhere"}:
                    assert by_keys == []
                elif "as_of" not in narrowing:
                    assert {i.memory_category for i in by_keys} == {"preference"}
                    assert (SIBLING in [i.scope for i in by_keys]) == (scope == TEAM)
                else:
                    assert by_keys and all(i.recorded_at <= middle for i in by_keys)
