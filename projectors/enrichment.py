"""Enrichers: MemoryRecorded events in, derived events out (appended to the log, never recomputed).

An enricher is a named pass over the log. Its output (vectors, facts, or a recorded failure) is what
replay uses, so a replay never calls a model, and a new model is simply a new pass with a new name.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from psycopg import AsyncConnection

from spectron.embedding import Embedder
from spectron.errors import EmbedderUnavailable, ExtractionFailed
from spectron.events import (
    EnrichmentFailed,
    EnrichmentFailedPayload,
    Envelope,
    FactsExtracted,
    FactsExtractedPayload,
    MemoryEmbedded,
    MemoryEmbeddedPayload,
    MemoryLike,
    MemoryRecorded,
    memory_text,
    new_event_fields,
)
from spectron.extraction import Extractor
from spectron.facts import EntityType
from spectron.scope import ancestor_keys, scope_key
from spectron.vectors import VectorDtype, pack

ENRICHER_PRINCIPAL = "system:enricher"
# the width vectors are logged at: unit vectors lose nothing recall can tell (spectron.vectors)
LOGGED_VECTOR_DTYPE: VectorDtype = "float16"
log = logging.getLogger(__name__)


class Enricher(Protocol):
    """A pass over the log's memories producing derived events."""

    @property
    def name(self) -> str:
        """Consumer name: the pass and its model."""
        ...

    batch_size: int

    async def enrich(
        self, conn: AsyncConnection[Any], memories: Sequence[MemoryLike]
    ) -> list[Envelope]:
        """Derived events for a batch; raising means 'retry the batch later'."""
        ...


def _derived(memory: MemoryLike) -> dict[str, Any]:
    """Envelope of an event derived from a memory: same scope (so same partition), system principal."""
    return new_event_fields(memory.scope, ENRICHER_PRINCIPAL)


def embed_memories(embedder: Embedder, memories: Sequence[MemoryLike]) -> list[MemoryEmbedded]:
    """Embed a batch of memories (or reflections); each vector becomes an event in its scope."""
    if not memories:
        return []
    vectors = embedder.embed_passages([memory_text(memory) or "" for memory in memories])
    if len(vectors) != len(memories):
        raise EmbedderUnavailable(f"{len(vectors)} vectors for {len(memories)} passages")
    for vector in vectors:
        # garbage is a model down, not an answer: never append it (the pass retries the batch)
        if len(vector) != embedder.dim or not np.isfinite(np.asarray(vector, dtype=float)).all():
            raise EmbedderUnavailable(
                f"{embedder.model_id} answered a vector of {len(vector)} dimensions"
                f" (expected {embedder.dim}) or with non-finite values"
            )
    return [
        MemoryEmbedded(
            **_derived(memory),
            payload=MemoryEmbeddedPayload(
                memory_id=memory.event_id,
                model=embedder.model_id,
                dtype=LOGGED_VECTOR_DTYPE,
                vector=pack(vector, LOGGED_VECTOR_DTYPE),
            ),
        )
        for memory, vector in zip(memories, vectors, strict=True)
    ]


def enrichment_consumer(embedder: Embedder) -> str:
    """Consumer name of the embedding pass for one model."""
    return f"enrich:{embedder.model_id}"


class EmbeddingEnricher:
    """Computes each memory's vector once, in batches, off the event loop."""

    batch_size = 32

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name = enrichment_consumer(embedder)

    async def enrich(
        self, conn: AsyncConnection[Any], memories: Sequence[MemoryLike]
    ) -> list[Envelope]:
        """MemoryEmbedded per memory; an embedder error propagates so the batch is retried."""
        return list(await asyncio.to_thread(embed_memories, self.embedder, memories))


# least specific first, and among equally specific scopes the latest registration last
_VISIBLE_TYPES = """
SELECT (SELECT count(*) FROM jsonb_object_keys(scope)) AS depth, definition FROM entity_types
WHERE scope_key = ANY(%s)
ORDER BY depth, recorded_at, scope_key
"""


async def registered_types(conn: AsyncConnection[Any], scope: dict[str, str]) -> list[EntityType]:
    """Entity types registered at the scope or any scope above it; the most specific wins a name,
    and between equally specific scopes (`{org}` and `{team}` above `{org, team}`) the later."""
    cur = await conn.execute(_VISIBLE_TYPES, [ancestor_keys(scope)])
    chosen: dict[str, EntityType] = {}
    for _depth, definition in await cur.fetchall():  # in order: the last one of a name wins
        entity_type = EntityType.model_validate(definition)
        chosen[entity_type.name] = entity_type
    return [chosen[name] for name in sorted(chosen)]


PROJECTED_BOUND = 10.0


async def _await_projected(conn: AsyncConnection[Any], memory_ids: list[uuid.UUID]) -> None:
    """Wait (bounded) until the projector has applied the memories, hence every event before them.

    Extraction reads registered entity types from the projection; a type registered just before
    a memory in the same partition must be there, or a race would miss it. A stalled projection
    must not stall extraction too, so past the bound it goes on with what it has.
    """
    deadline = time.monotonic() + PROJECTED_BOUND
    while True:
        cur = await conn.execute(
            "SELECT count(*) FROM memories WHERE memory_id = ANY(%s)", [memory_ids]
        )
        row = await cur.fetchone()
        if row is not None and row[0] == len(memory_ids):
            return
        if time.monotonic() >= deadline:
            log.warning("memories not projected in time; extracting anyway")
            return
        await asyncio.sleep(0.05)


class ExtractionEnricher:
    """Extracts facts from memories the caller gave none for; a failed memory is recorded, not retried."""

    batch_size = 16

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        self.name = f"extract:{extractor.extractor_id}"

    async def enrich(
        self, conn: AsyncConnection[Any], memories: Sequence[MemoryLike]
    ) -> list[Envelope]:
        """FactsExtracted (possibly empty) or EnrichmentFailed per memory without caller facts.

        Reflections are syntheses of memories already extracted: extracting them again would
        count the same claims twice.
        """
        out: list[Envelope] = []
        pending = [
            memory
            for memory in memories
            if isinstance(memory, MemoryRecorded) and memory.payload.facts is None
        ]
        if pending:  # one bounded wait for the batch, not one query per memory
            await _await_projected(conn, [memory.event_id for memory in pending])
        types_by_scope: dict[str, list[EntityType]] = {}  # a batch is mostly one scope
        for memory in pending:
            where = scope_key(memory.scope)
            if where not in types_by_scope:
                types_by_scope[where] = await registered_types(conn, memory.scope)
            types = types_by_scope[where]
            try:
                facts = await asyncio.to_thread(
                    self.extractor.extract, memory.payload.content, types
                )
            except ExtractionFailed as exc:
                out.append(
                    EnrichmentFailed(
                        **_derived(memory),
                        payload=EnrichmentFailedPayload(
                            memory_id=memory.event_id,
                            enricher=self.name,
                            reason=str(exc)[:2000] or type(exc).__name__,
                        ),
                    )
                )
                continue
            out.append(
                FactsExtracted(
                    **_derived(memory),
                    payload=FactsExtractedPayload(
                        memory_id=memory.event_id,
                        extractor=self.extractor.extractor_id,
                        facts=facts,
                    ),
                )
            )
        return out


def enrichment_passes(embedder: Embedder, extractor: Extractor | None) -> list[Enricher]:
    """The passes every driver runs: embedding always, extraction when an extractor is set."""
    passes: list[Enricher] = [EmbeddingEnricher(embedder)]
    if extractor is not None:
        passes.append(ExtractionEnricher(extractor))
    return passes
