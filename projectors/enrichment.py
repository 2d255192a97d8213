"""Embedding enrichment: MemoryRecorded events in, MemoryEmbedded events out (appended to the log)."""

from __future__ import annotations

from collections.abc import Sequence

from spectron.embedding import Embedder
from spectron.events import MemoryEmbedded, MemoryEmbeddedPayload, MemoryRecorded, new_event_fields

ENRICHER_PRINCIPAL = "system:enricher"


def enrichment_consumer(embedder: Embedder) -> str:
    """Consumer name of the enrichment pass for one model: a new model is a new pass over the log."""
    return f"enrich:{embedder.model_id}"


def embed_memories(embedder: Embedder, memories: Sequence[MemoryRecorded]) -> list[MemoryEmbedded]:
    """Embed a batch of memories; each vector becomes an event in the memory's own scope."""
    if not memories:
        return []
    vectors = embedder.embed_passages([memory.payload.content for memory in memories])
    return [
        MemoryEmbedded(
            **new_event_fields(memory.scope, ENRICHER_PRINCIPAL),
            payload=MemoryEmbeddedPayload(
                memory_id=memory.event_id,
                model=embedder.model_id,
                vector=[float(x) for x in vector],
            ),
        )
        for memory, vector in zip(memories, vectors, strict=True)
    ]
