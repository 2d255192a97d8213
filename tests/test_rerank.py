"""The opt-in reranker: the `/rerank` HTTP adapter (Cohere/Jina and TEI shapes) and recall using it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from spectron import SpectronClient
from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import RerankerUnavailable
from spectron.rerank import make_reranker
from spectron.rerank.http import HttpReranker
from tests.recorded_llm import Reply, recorded_server


def favouring(word: str, seen: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Reply]:
    """A recorded Cohere-shaped reranker: documents holding `word` score 0.9, others 0.1.

    It answers its results best first, as real endpoints do, not in the documents' order.
    """

    def reply(body: dict[str, Any]) -> Reply:
        seen.append(body)
        docs = body.get("documents") or body.get("texts") or []
        results = [
            {"index": i, "relevance_score": 0.9 if word in doc else 0.1}
            for i, doc in enumerate(docs)
        ]
        results.sort(key=lambda row: -row["relevance_score"])
        if "texts" in body:  # TEI: a bare list of {index, score}
            return 200, json.dumps(
                [{"index": r["index"], "score": r["relevance_score"]} for r in results]
            ).encode()
        return 200, json.dumps({"results": results}).encode()

    return reply


def test_cohere_and_tei_shapes() -> None:
    seen: list[dict[str, Any]] = []
    with recorded_server({"rr": favouring("b", seen)}, b"") as (base_url, recorder):
        cohere = HttpReranker(base_url("rr"), model="rerank-small", api_key="k")
        assert cohere.rerank("q", ["a", "b", "c"]) == [0.1, 0.9, 0.1]
        assert recorder.path == "/rr/v1/rerank"
        assert recorder.headers["Authorization"] == "Bearer k"
        assert seen[-1] == {"query": "q", "documents": ["a", "b", "c"], "model": "rerank-small"}
        tei = HttpReranker(base_url("rr"), api="tei")
        assert tei.rerank("q", ["b", "a"]) == [0.9, 0.1]
        assert seen[-1] == {"query": "q", "texts": ["b", "a"]}
        assert cohere.rerank("q", []) == []


@pytest.mark.parametrize(
    "reply",
    [
        (500, b"overloaded"),
        (200, b"not json"),
        (200, b'{"results": [{"index": 0, "relevance_score": 0.5}]}'),  # one of two scored
        (200, b'{"data": []}'),
    ],
)
def test_bad_answers_raise_reranker_unavailable(reply: Reply) -> None:
    with recorded_server({"bad": reply}, b"") as (base_url, _):
        with pytest.raises(RerankerUnavailable):
            HttpReranker(base_url("bad")).rerank("q", ["a", "b"])


def test_reranker_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECTRON_RERANKER", raising=False)
    assert make_reranker(settings=Settings.from_env()) is None
    monkeypatch.setenv("SPECTRON_RERANKER", "http")
    monkeypatch.setenv("SPECTRON_RERANKER_URL", "http://127.0.0.1:9/v1")
    assert isinstance(make_reranker(settings=Settings.from_env()), HttpReranker)
    with pytest.raises(ValueError):
        make_reranker("magic")


TURNS = [
    "Ben: I ran my first marathon in Lisbon yesterday.",
    "Ana: Which marathon was your favourite, the marathon in Porto or the marathon in Rome?",
    "Ana: My kitten Miso learnt to open the fridge.",
]


async def test_recall_reorders_by_the_reranker_and_falls_back_when_it_fails(
    database: str,
) -> None:
    scope = {"org": "rerank"}
    seen: list[dict[str, Any]] = []
    plain = SpectronClient(database=database, embedder=HashingEmbedder(), extractor="none")
    try:
        async with plain.sessions.create(scope=scope) as session:
            ids = [(await session.remember(turn)).id for turn in TURNS]
            fused = await session.recall("marathon", top_k=3)
    finally:
        await plain.close()
    assert fused.items[0].id == ids[1]  # "marathon" thrice: the best match without a reranker

    with recorded_server({"rr": favouring("Lisbon", seen), "down": (503, b"")}, b"") as (url, _):
        for scenario, first in (("rr", ids[0]), ("down", ids[1])):
            client = SpectronClient(
                database=database,
                embedder=HashingEmbedder(),
                extractor="none",
                reranker=HttpReranker(url(scenario)),
            )
            try:
                async with client.sessions.create(scope=scope) as session:
                    reranked = await session.recall("marathon", top_k=2, explain=True)
                    keyword = await session.recall("marathon", top_k=3, mode="keyword")
            finally:
                await client.close()
            assert reranked.items[0].id == first, scenario
            assert len(reranked.items) == 2
            why = reranked.items[0].explanation
            assert why is not None
            assert why.rerank_score == (0.9 if scenario == "rr" else None)
            assert keyword.items[0].id == ids[1]  # only hybrid recall is reranked
    # the reranker saw the query and every hybrid hit of the scope (3 memories)
    assert seen[-1]["query"] == "marathon" and sorted(seen[-1]["documents"]) == sorted(TURNS)
