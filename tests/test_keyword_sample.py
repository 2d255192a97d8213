"""The keyword leg's sample: exact BM25 while the view fits in it, rare words found past it."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from spectron import recall
from spectron.recall import DEFAULT_TUNING, search

NOTES = [
    "Quarterly revenue report: revenue grew in the north region.",
    "The north office moved; the report on the move is late.",
    "Zanzibar office opened with a revenue target.",
    "Revenue, revenue, revenue: the board only asks about revenue.",
    "Lunch menu for the offsite.",
    "The offsite report covers the north and the south region.",
    "South region revenue fell after the move.",
]


async def lexemes(conn: Any, text: str) -> Counter[str]:
    """Postgres' English lexemes of `text`, with how often each occurs."""
    cur = await conn.execute(
        "SELECT lexeme, coalesce(array_length(positions, 1), 1)"
        " FROM unnest(to_tsvector('english', %s))",
        [text],
    )
    return Counter({lexeme: count for lexeme, count in await cur.fetchall()})


def bm25_order(docs: dict[Any, Counter[str]], query: set[str]) -> list[Any]:
    """Memory ids by BM25 as DEFAULT_TUNING defines it (the view is the corpus), best first."""
    k1, b = DEFAULT_TUNING.bm25_k1, DEFAULT_TUNING.bm25_b
    matched = {key: terms for key, terms in docs.items() if query & terms.keys()}
    avglen = sum(len(terms) for terms in matched.values()) / len(matched)
    n = len(docs)
    df = {t: sum(t in terms for terms in matched.values()) for t in query}
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in query}
    score = {
        key: sum(
            idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(terms) / avglen))
            for t, tf in terms.items()
            if t in query
        )
        for key, terms in matched.items()
    }
    return sorted(score, key=lambda key: (-score[key], str(key)))


async def test_a_view_within_the_sample_is_ranked_by_exact_bm25(make_client) -> None:
    scope = {"org": "sampled", "team": "small"}
    client = make_client(extractor="none")
    async with client.sessions.create(scope=scope) as session:
        ids = [(await session.remember(note)).id for note in NOTES]
        await session.recall("warm up", top_k=1)
    service = await client.service()
    query = "north revenue report from Zanzibar"
    async with service.pool.connection() as conn:
        docs = {
            memory_id: await lexemes(conn, note) for memory_id, note in zip(ids, NOTES, strict=True)
        }
        wanted = bm25_order(docs, set(await lexemes(conn, query)))
        found = await search(conn, scope, query, None, top_k=len(NOTES), mode="keyword")
    assert [item.id for item in found] == wanted


async def test_a_rare_word_outside_the_sample_is_found(make_client, monkeypatch) -> None:
    """Past the sample, the query's rarest words are looked up in the whole view by index."""
    monkeypatch.setattr(recall, "KEYWORD_SAMPLE", 10)
    monkeypatch.setattr(recall, "PROBE_BUDGET", 2)
    scope = {"org": "sampled", "team": "large"}
    client = make_client(extractor="none")
    async with client.sessions.create(scope=scope) as session:
        # written first: the sample holds the newest memories, so this one is outside it
        rare = (await session.remember("The Zanzibar status report is overdue.")).id
        for n in range(200):
            await session.remember(f"Weekly status report number {n} for the platform team.")
        await session.recall("warm up", top_k=1)
    service = await client.service()
    async with service.pool.connection() as conn:
        found = await search(conn, scope, "Zanzibar status report", None, top_k=5, mode="keyword")
        common = await search(conn, scope, "weekly status", None, top_k=5, mode="keyword")
    assert found[0].id == rare
    # a common word's matches come from the sample: still a full answer
    assert len(common) == 5
    assert all("status" in item.content for item in common)


@pytest.mark.parametrize("mode", ["keyword", "hybrid"])
async def test_the_sample_obeys_visibility_and_filters(make_client, monkeypatch, mode) -> None:
    """Sampled and looked-up memories alike are only those in view that pass the filters."""
    monkeypatch.setattr(recall, "KEYWORD_SAMPLE", 5)
    mine, sibling = {"org": "sampled", "team": "mine"}, {"org": "sampled", "team": "other"}
    client = make_client(extractor="none")
    a = client.sessions.create(scope=mine)
    b = client.sessions.create(scope=sibling)
    for n in range(20):
        await a.remember(f"Platform note {n} about quokka counts.", memory_category="episodic")
        await b.remember(f"Sibling note {n} about quokka counts.", memory_category="episodic")
    kept = (await a.remember("Quokka census.", memory_category="knowledge")).id
    await a.recall("warm up", top_k=1)
    service = await client.service()
    async with service.pool.connection() as conn:
        vector = service.embedder.embed_query("quokka census")
        found = await search(
            conn, mine, "quokka census", vector, top_k=10, mode=mode, memory_category="knowledge"
        )
    assert [item.id for item in found] == [kept]


@pytest.mark.parametrize("named_by_keys", [True, False])
async def test_the_sample_is_the_newest_memories_in_view(
    make_client, monkeypatch, named_by_keys
) -> None:
    """A word the sample holds is not looked up: its matches are the sample's, the newest ones."""
    monkeypatch.setattr(recall, "KEYWORD_SAMPLE", 5)
    monkeypatch.setattr(recall, "PROBE_BUDGET", 0)
    if not named_by_keys:
        monkeypatch.setattr(recall, "VIEW_KEYS_MAX", 0)
    parent, child = {"org": "newest"}, {"org": "newest", "team": "a"}
    client = make_client(extractor="none")
    ids = []
    for n in range(12):  # alternating scopes: the view's newest span both
        session = client.sessions.create(scope=parent if n % 2 else child)
        ids.append((await session.remember(f"Harbour log entry {n}.")).id)
    await client.sessions.create(scope=child).recall("warm up", top_k=1)
    service = await client.service()
    async with service.pool.connection() as conn:
        found = await search(conn, child, "harbour log", None, top_k=10, mode="keyword")
    assert {item.id for item in found} == set(ids[-5:])
