"""Hybrid recall: BM25 keyword ranks, neighbour lending, and `explain=True` on both transports."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from spectron import InvalidInput, SpectronClient
from spectron.embedding.hashing import HashingEmbedder
from spectron.maintenance import catch_up
from spectron.recall import DEFAULT_TUNING, search
from tests.http_support import fresh_org

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures

# a conversation, remembered in order: the answer to the question sits in the turn after it
DIALOG = [
    "Ana: I finally went hiking in the Dolomites last week.",
    "Ben: Which hut did you sleep in on the way up?",
    "Ana: Rifugio Lagazuoi, right below the summit.",
    "Ben: My sister is moving to Porto in spring.",
    "Ana: Porto has great tiles and even better pastries.",
    "Ben: I am repainting the kitchen a pale green this weekend.",
]


async def remember_dialog(client: Any, scope: dict[str, str]) -> list[Any]:
    """The dialog's memory ids, remembered one after the other in `scope`."""
    async with client.sessions.create(scope=scope) as session:
        return [(await session.remember(turn)).id for turn in DIALOG]


async def test_explain_says_which_legs_found_each_item_and_at_what_rank(client) -> None:
    scope = {"org": fresh_org(), "chat": "c1"}
    ids = await remember_dialog(client, scope)
    async with client.sessions.create(scope=scope) as session:
        query = "Which hut did Ana sleep in while hiking?"
        explained = await session.recall(query, top_k=6, explain=True)
        dense = await session.recall(query, top_k=6, mode="dense")
        keyword = await session.recall(query, top_k=6, mode="keyword")
        plain = await session.recall(query, top_k=6)

    assert [i.id for i in plain.items] == [i.id for i in explained.items]
    assert all(item.explanation is None for item in plain.items)
    dense_ranks = {item.id: rank for rank, item in enumerate(dense.items, 1)}
    keyword_ranks = {item.id: rank for rank, item in enumerate(keyword.items, 1)}
    for item in explained.items:
        why = item.explanation
        assert why is not None
        # each leg's rank is the rank that leg alone gives it
        assert why.dense_rank == dense_ranks.get(item.id)
        assert why.keyword_rank == keyword_ranks.get(item.id)
        assert ("dense" in why.legs) == (why.dense_rank is not None)
        assert ("keyword" in why.legs) == (why.keyword_rank is not None)
        assert ("neighbour" in why.legs) == bool(why.lent_by)
        assert item.score == pytest.approx(why.fused_score + why.neighbour_score)
        assert set(why.lent_by) <= {i.id for i in explained.items} | set(ids)
    # the question's turn is the best keyword match; the answer after it borrows from it
    asked, answered = ids[1], ids[2]
    by_id = {item.id: item for item in explained.items}
    assert by_id[asked].explanation.keyword_rank == 1  # type: ignore[union-attr]
    assert asked in by_id[answered].explanation.lent_by  # type: ignore[union-attr]


async def test_explain_must_be_a_boolean(client) -> None:
    async with client.sessions.create(scope={"org": fresh_org()}) as session:
        with pytest.raises(InvalidInput):
            await session.recall("anything", explain="yes")


async def test_bm25_weighs_a_rare_word_above_a_common_one(module_database) -> None:
    """With term weights the memory holding the rare query word wins; without them it does not."""
    scope = {"org": fresh_org()}
    client = SpectronClient(database=module_database, embedder=HashingEmbedder(), extractor="none")
    try:
        async with client.sessions.create(scope=scope) as session:
            for n in range(8):
                await session.remember(f"Report {n}: revenue report for the quarterly report.")
            rare = (await session.remember("Zanzibar office opened.")).id
            await session.recall("warm up", top_k=1)
        service = await client.service()
        async with service.pool.connection() as conn:
            bm25 = await search(conn, scope, "Zanzibar report", None, top_k=3, mode="keyword")
            flat = await search(
                conn,
                scope,
                "Zanzibar report",
                None,
                top_k=3,
                mode="keyword",
                tuning=dataclasses.replace(DEFAULT_TUNING, bm25=False),
            )
    finally:
        await client.close()
    assert bm25[0].id == rare
    assert flat[0].id != rare  # cover density without term weights prefers "report" thrice


async def test_neighbours_stay_in_scope_and_obey_filters(module_database) -> None:
    """Lent score goes to memories beside a hit in its own scope that pass the recall's filters."""
    org = fresh_org()
    mine, sibling = {"org": org, "agent": "a"}, {"org": org, "agent": "b"}
    client = SpectronClient(database=module_database, embedder=HashingEmbedder(), extractor="none")
    try:
        a = client.sessions.create(scope=mine)
        b = client.sessions.create(scope=sibling)
        before = (await a.remember("Plain note before: sightings.", memory_category="episodic")).id
        await b.remember("Sibling note on sightings, in between.", memory_category="episodic")
        hit = (await a.remember("Quokka sightings doubled.", memory_category="episodic")).id
        await b.remember("Another sibling note on sightings.", memory_category="episodic")
        knowledge = (
            await a.remember("A knowledge note on sightings.", memory_category="knowledge")
        ).id
        after = (await a.remember("Plain note after: sightings.", memory_category="episodic")).id
        service = await client.service()
        await catch_up(service, 60.0)
        async with service.pool.connection() as conn:
            found = await search(
                conn,
                mine,
                "quokka sightings",
                None,
                top_k=10,
                mode="hybrid",
                memory_category="episodic",
                explain=True,
            )
    finally:
        await client.close()
    assert [item.id for item in found][:1] == [hit]
    lent = {item.id for item in found if item.explanation and item.explanation.lent_by}
    assert lent == {before, after}  # the knowledge note is filtered out, the sibling is not seen
    assert knowledge not in {item.id for item in found}
    assert all(item.scope == mine for item in found)


async def test_neighbours_are_lent_only_what_the_query_matched_and_never_pass_their_lender(
    module_database,
) -> None:
    """A run of matching notes around the best match lends it no rival, and no unrelated note joins."""
    scope = {"org": fresh_org()}
    dialog = [
        "Unrelated: the printer is out of toner.",
        "Sightings one.",
        "Sightings two.",
        "Quokka sightings doubled.",
        "Sightings three.",
        "Sightings four.",
        "Unrelated: lunch moved to noon.",
    ]
    client = SpectronClient(database=module_database, embedder=HashingEmbedder(), extractor="none")
    try:
        async with client.sessions.create(scope=scope) as session:
            ids = [(await session.remember(turn)).id for turn in dialog]
        service = await client.service()
        await catch_up(service, 60.0)
        async with service.pool.connection() as conn:
            found = await search(
                conn, scope, "quokka sightings", None, top_k=10, mode="hybrid", explain=True
            )
            unlent = await search(
                conn,
                scope,
                "quokka sightings",
                None,
                top_k=10,
                mode="hybrid",
                tuning=dataclasses.replace(DEFAULT_TUNING, neighbour_weight=0.0),
            )
    finally:
        await client.close()
    assert found[0].id == ids[3]
    assert {item.id for item in found} == set(ids[1:6])  # the unrelated notes beside them are not
    assert {item.id for item in unlent} == set(ids[1:6])
    scores = {item.id: item.score for item in found}
    lent = [item for item in found if item.explanation and item.explanation.lent_by]
    assert lent, "the notes beside the hit are lent score"
    for item in lent:
        assert item.explanation is not None and item.explanation.neighbour_score > 0
        # uncapped, a note lent by three hits passes the best of them
        assert item.score < scores[item.explanation.lent_by[0]]
