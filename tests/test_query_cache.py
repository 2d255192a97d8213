"""Repeated recall queries are served from the query-vector cache, not embedded again."""

from __future__ import annotations

import numpy as np

from spectron.embedding import Vectors
from spectron.embedding.cache import QueryVectorCache
from spectron.embedding.hashing import HashingEmbedder

SCOPE = {"org": "acme", "project": "query-cache"}


class QueryCountingEmbedder(HashingEmbedder):
    """Hashing embedder that counts the queries it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_query(self, text: str) -> Vectors:
        self.queries.append(text)
        return super().embed_query(text)


async def test_second_identical_query_does_not_call_the_embedder(make_client) -> None:
    embedder = QueryCountingEmbedder()
    client = make_client(embedder=embedder, extractor="none")
    async with client.sessions.create(scope=SCOPE) as s:
        await s.remember("The quarterly budget was approved.")
        first = await s.recall("quarterly budget")
        second = await s.recall("quarterly budget", mode="dense")
        assert embedder.queries == ["quarterly budget"]
        assert [i.id for i in first.items][:1] == [i.id for i in second.items][:1]
        await s.recall("budget approval")
        await s.recall("quarterly budget", mode="keyword")  # keyword recall embeds nothing
        assert embedder.queries == ["quarterly budget", "budget approval"]


def test_cache_is_bounded_lru_keyed_by_model_and_text() -> None:
    cache = QueryVectorCache(maxsize=2)
    one, two = np.ones(3, dtype=np.float32), np.zeros(3, dtype=np.float32)
    cache.put("model-a", "q1", one)
    cache.put("model-a", "q2", two)
    assert cache.get("model-b", "q1") is None, "another model's vector is never served"
    assert cache.get("model-a", "q1") is not None  # q1 is now the most recently used
    cache.put("model-a", "q3", one)
    assert len(cache) == 2 and cache.get("model-a", "q2") is None
    cached = cache.get("model-a", "q1")
    assert cached is not None and not cached.flags.writeable
    one[0] = 5.0  # the caller's array may change: the cache holds its own copy
    assert cached[0] == 1.0
