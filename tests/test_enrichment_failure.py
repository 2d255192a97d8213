"""Enrichment failures never block the memory itself (embedded mode, in-process loops).

With the embedder down (raising, or hanging), a remember succeeds and the memory is recallable by
keyword at once, counted as pending; when the embedder recovers the loops' backoff retries and the
memory becomes recallable semantically with no caller action. Likewise for fact extraction: an
unexpected error is retried until it succeeds; ExtractionFailed (a malformed answer) is recorded
once as EnrichmentFailed and visible in `enrichment_failures`.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import pytest

from spectron import SpectronClient
from spectron.embedding import Vectors
from spectron.embedding.hashing import HashingEmbedder
from spectron.errors import ExtractionFailed
from spectron.extraction.patterns import PatternExtractor
from spectron.facts import EntityType, Facts
from spectron.maintenance import rebuild, state_hash
from spectron.service import MemoryService

SCOPE = {"org": "acme", "project": "enrichment"}
WALRUS = "The walrus budget was approved by the finance committee."
DEADLINE = 60.0  # seconds: the tailer's backoff doubles from 0.5 s while the model is down


class FlakyEmbedder(HashingEmbedder):
    """A hashing embedder whose passage embedding fails (raises or hangs) while `down`."""

    def __init__(self, failure: str = "raise") -> None:
        super().__init__()
        self.failure = failure
        self.down = True
        self.attempts = 0
        self.released = threading.Event()  # a hanging call returns once this is set

    def recover(self) -> None:
        """The model is back (a hanging call now returns)."""
        self.down = False
        self.released.set()

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Fail while down; embed normally once recovered."""
        self.attempts += 1
        if self.down and self.failure == "raise":
            raise ConnectionError("embedding service down")
        if self.down and self.failure == "hang":
            self.released.wait(30)
        return super().embed_passages(texts)


class GarbageEmbedder(HashingEmbedder):
    """Answers vectors of the wrong dimension, or NaNs, while `down`."""

    def __init__(self, garbage: str) -> None:
        super().__init__()
        self.garbage = garbage
        self.down = True
        self.attempts = 0

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Garbage while down; real vectors afterwards."""
        self.attempts += 1
        if not self.down:
            return super().embed_passages(texts)
        if self.garbage == "wrong dimension":
            return np.ones((len(texts), 3), dtype=np.float32)
        return np.full((len(texts), self.dim), np.nan, dtype=np.float32)


class FlakyExtractor:
    """Pattern extraction, except: while `down` it raises an unexpected error (to be retried);
    content containing "garbled" always fails with ExtractionFailed (recorded, never retried)."""

    extractor_id = "flaky@1"

    def __init__(self) -> None:
        self.down = True
        self.calls: Counter[str] = Counter()
        self._patterns = PatternExtractor()

    def extract(self, content: str, types: Sequence[EntityType]) -> Facts:
        """Facts of `content`, or the failure this test wants."""
        self.calls[content] += 1
        if self.down:
            raise TimeoutError("the LLM did not answer in time")
        if "garbled" in content:
            raise ExtractionFailed("the model answered something that is not facts JSON")
        return self._patterns.extract(content, types)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, within: float = DEADLINE
) -> None:
    """Poll `check` until it holds, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(0.2)


async def unembedded(service: MemoryService) -> int:
    """Memories without a vector yet."""
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM memories WHERE embedding IS NULL")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def await_projected(client: SpectronClient, memory_id: uuid.UUID) -> None:
    """Wait (bounded by DEADLINE) until the memory's row is projected.

    The short-bounded reads below must not wait for an embedder that is down; bounding them
    also bounds the projection of the memory itself, which on a loaded machine can take longer.
    """
    service = await client.service()

    async def found() -> bool:
        async with service.pool.connection() as conn:
            cur = await conn.execute("SELECT 1 FROM memories WHERE memory_id = %s", [memory_id])
            return await cur.fetchone() is not None

    await eventually(found, f"memory {memory_id} is projected")


@pytest.mark.parametrize("failure", ["raise", "hang"])
async def test_memory_is_recallable_while_the_embedder_is_down_and_embedded_after(
    make_client: Callable[..., SpectronClient], failure: str
) -> None:
    embedder = FlakyEmbedder(failure)
    client = make_client(embedder=embedder, extractor="none")
    try:
        async with client.sessions.create(scope=SCOPE) as s:
            remembered = await s.remember(WALRUS)  # the append does not wait for enrichment
            await await_projected(client, remembered.id)
            ctx = await s.recall("walrus budget", timeout=0.3)
            assert [item.id for item in ctx.items] == [remembered.id]
            assert ctx.pending == 1 and not ctx.items[0].embedded
            assert "not yet embedded" in ctx.formatted
            assert (await s.recall("walrus budget", mode="dense", timeout=0.3)).items == []

            # other memories keep flowing while the model is down
            narwhal = await s.remember("The narwhal survey starts in May.")
            await await_projected(client, narwhal.id)
            later = await s.recall("narwhal survey", timeout=0.3)
            assert [item.content for item in later.items][:1] == [
                "The narwhal survey starts in May."
            ]
            if failure == "raise":

                async def retried() -> bool:
                    return embedder.attempts >= 2

                await eventually(retried, "the enrichment pass retries")

            embedder.recover()  # no caller action from here on

            async def semantically_found() -> bool:
                found = await s.recall("walrus budget", mode="dense", timeout=0.3)
                return any(i.id == remembered.id and i.embedded for i in found.items)

            await eventually(semantically_found, "the memory is recalled in dense mode")
            settled = await s.recall("walrus budget", timeout=DEADLINE)
            assert settled.pending == 0 and settled.items[0].embedded
        service = await client.service()
        assert await unembedded(service) == 0
    finally:
        embedder.recover()  # never leave a worker thread hanging


@pytest.mark.parametrize("garbage", ["wrong dimension", "NaN"])
async def test_a_garbage_embedding_is_retried_and_blocks_nothing(
    make_client: Callable[..., SpectronClient], garbage: str
) -> None:
    """A model answering garbage vectors is a model down: retried, never appended, never blocking."""
    embedder = GarbageEmbedder(garbage)
    client = make_client(embedder=embedder, extractor="none")
    async with client.sessions.create(scope=SCOPE) as s:
        remembered = await s.remember(WALRUS)

        async def met_garbage() -> bool:
            return embedder.attempts >= 1

        await eventually(met_garbage, "the enrichment pass meets the garbage")
        await s.remember("The narwhal survey starts in May.")
        ctx = await s.recall("narwhal survey", timeout=3)
        assert [item.content for item in ctx.items] == ["The narwhal survey starts in May."]

        embedder.down = False

        async def semantically_found() -> bool:
            found = await s.recall("walrus budget", mode="dense", timeout=0.3)
            return any(i.id == remembered.id and i.embedded for i in found.items)

        # garbage is not an exception, so no backoff has grown: a few seconds are plenty
        await eventually(semantically_found, "the memory is embedded once sane")
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        assert await cur.fetchone() == (0,), "the enricher never appends poison of its own"


async def test_extraction_retries_unexpected_errors_and_records_extraction_failed(
    make_client: Callable[..., SpectronClient],
) -> None:
    extractor = FlakyExtractor()
    client = make_client(extractor=extractor)
    service = await client.service()
    async with client.sessions.create(scope=SCOPE) as s:
        priced = await s.remember("Competitor X's Pro tier costs $299/mo.")
        garbled = await s.remember("A garbled note the model cannot read.")
        # the memories and their vectors do not wait for extraction
        ctx = await s.recall("Competitor Pro tier", mode="dense", timeout=DEADLINE)
        assert priced.id in [item.id for item in ctx.items] and ctx.pending == 0
        state = await s.get_state(timeout=0.3)
        assert state.entity("Competitor", "Competitor X") is None and state.pending == 2

        async def retried() -> bool:
            return extractor.calls["Competitor X's Pro tier costs $299/mo."] >= 2

        await eventually(retried, "the extraction is retried")

        extractor.down = False  # no caller action from here on

        async def extracted() -> bool:
            state = await s.get_state(timeout=0.3)
            return state.pending == 0 and state.entity("Competitor", "Competitor X") is not None

        await eventually(extracted, "the facts are extracted once the extractor is back")
        state = await s.get_state()
        competitor = state.entity("Competitor", "Competitor X")
        assert competitor is not None and competitor.current == {"pro_tier_price": "$299/mo"}

    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT memory_id, enricher, reason FROM enrichment_failures ORDER BY memory_id"
        )
        failures: list[Any] = await cur.fetchall()
    assert failures == [
        (garbled.id, "extract:flaky@1", "the model answered something that is not facts JSON")
    ]
    calls_after = extractor.calls["A garbled note the model cannot read."]
    await asyncio.sleep(1.0)
    assert extractor.calls["A garbled note the model cannot read."] == calls_after, (
        "an ExtractionFailed memory is recorded, not retried"
    )
    # the recorded failure is part of the state replay rebuilds
    before = await state_hash(service)
    await rebuild(service)
    assert await state_hash(service) == before


async def test_a_pending_memory_is_not_buried_by_embedded_ones(
    make_client: Callable[..., SpectronClient],
) -> None:
    """The best keyword match, not embedded yet, is recalled in hybrid mode at the bound."""
    embedder = FlakyEmbedder("raise")
    embedder.down = False
    client = make_client(embedder=embedder, extractor="none")
    async with client.sessions.create(scope=SCOPE) as s:
        for n in range(8):
            await s.remember(f"Note {n} about the quarterly marker review.")
        assert (await s.recall("marker", top_k=10)).pending == 0
        embedder.down = True
        remembered = await s.remember("The zq1k1 marker was found in the archive.")
        await await_projected(client, remembered.id)
        keyword = await s.recall("zq1k1 marker", top_k=5, timeout=0.3, mode="keyword")
        assert keyword.items[0].id == remembered.id  # the best keyword match
        hybrid = await s.recall("zq1k1 marker", top_k=5, timeout=0.3)
        embedder.recover()
    assert hybrid.pending == 1
    assert remembered.id in [item.id for item in hybrid.items]


async def test_a_foreign_vector_of_another_length_is_skipped_not_stalling(
    make_client: Callable[..., SpectronClient],
) -> None:
    """Another producer's MemoryEmbedded the index cannot hold must not stop the partition."""
    from spectron.events import (
        MemoryEmbedded,
        MemoryEmbeddedPayload,
        encode_event,
        new_event_fields,
        partition_key,
    )

    embedder = FlakyEmbedder("raise")  # down: the foreign vector is projected before any other
    client = make_client(embedder=embedder, extractor="none")
    async with client.sessions.create(scope=SCOPE) as s:
        first = await s.remember(WALRUS)
        service = await client.service()
        foreign = MemoryEmbedded(
            **new_event_fields(SCOPE, "producer:other"),
            payload=MemoryEmbeddedPayload(
                memory_id=first.id, model=service.embedder.model_id, vector=[0.5] * 7
            ),
        )
        await service.log.append_raw(first.partition, partition_key(foreign), encode_event(foreign))
        second = await s.remember("The narwhal survey starts in May.")

        async def projected() -> bool:
            found = await s.recall("narwhal survey", timeout=0.3, mode="keyword")
            return [item.id for item in found.items][:1] == [second.id]

        await eventually(projected, "the partition keeps flowing past the foreign vector")
        embedder.recover()
        found = await s.recall("walrus budget", mode="dense", timeout=DEADLINE)
        assert first.id in [item.id for item in found.items if item.embedded]
