"""RecallProjector: memories into the recall index (text, scope, full-text vector, embedding)."""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from projectors.base import ProjectionContext
from spectron.events import LoggedEvent, MemoryEmbedded, MemoryRecorded, ReflectionRecorded
from spectron.scope import scope_key

log = logging.getLogger(__name__)

_INSERT_MEMORY = """
INSERT INTO memories (memory_id, scope, scope_key, content, memory_category, metadata, principal,
                      client_time, recorded_at, partition, "offset")
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (memory_id) DO NOTHING
"""

# A vector only counts for the model this projection indexes; the first recorded one wins, so a
# re-delivered or re-computed enrichment event cannot change a row after the fact (here, and in
# the mover, which sets only a missing vector). Staged, not set: see projectors.vector_index.
_STAGE_EMBEDDING = """
INSERT INTO staged_vectors (embedding, model, embedded_at, memory_id) VALUES (%s, %s, %s, %s)
ON CONFLICT (memory_id) DO NOTHING
"""


_INSERT_REFLECTION = """
INSERT INTO reflections (reflection_id, scope, scope_key, query, summary, sources, uncertain,
                         reasoner, principal, recorded_at, partition, "offset")
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (reflection_id) DO NOTHING
"""


async def _insert_memory(
    cur: AsyncCursor[Any], logged: LoggedEvent, content: str, category: str, metadata: Jsonb
) -> None:
    event = logged.event
    await cur.execute(
        _INSERT_MEMORY,
        [
            event.event_id,
            Jsonb(event.scope),
            scope_key(event.scope),
            content,
            category,
            metadata,
            event.principal,
            event.client_time,
            logged.recorded_at,
            logged.position.partition,
            logged.position.offset,
        ],
    )


async def project_recall(
    cur: AsyncCursor[Any], logged: LoggedEvent, ctx: ProjectionContext
) -> None:
    """Apply one event to the recall index."""
    event = logged.event
    if isinstance(event, MemoryRecorded):
        payload = event.payload
        await _insert_memory(
            cur, logged, payload.content, payload.memory_category, Jsonb(payload.metadata)
        )
    elif isinstance(event, ReflectionRecorded):
        reflection = event.payload
        provenance = {"query": reflection.query, "reasoner": reflection.reasoner}
        await _insert_memory(cur, logged, reflection.summary, "reflection", Jsonb(provenance))
        await cur.execute(
            _INSERT_REFLECTION,
            [
                event.event_id,
                Jsonb(event.scope),
                scope_key(event.scope),
                reflection.query,
                reflection.summary,
                reflection.sources,
                reflection.uncertain,
                reflection.reasoner,
                event.principal,
                logged.recorded_at,
                logged.position.partition,
                logged.position.offset,
            ],
        )
    elif isinstance(event, MemoryEmbedded):
        payload_e = event.payload
        if payload_e.model != ctx.embedding_model:
            return
        if ctx.embedding_dim is not None and payload_e.dimensions != ctx.embedding_dim:
            # another producer's vector that the index cannot hold: skip it, as replay will,
            # rather than fail the partition's projection for good
            log.warning(
                "skipping the %d-dimensional vector of memory %s at %s (index: %d)",
                payload_e.dimensions,
                payload_e.memory_id,
                logged.position,
                ctx.embedding_dim,
            )
            return
        await cur.execute(
            _STAGE_EMBEDDING,
            [
                payload_e.values(),
                payload_e.model,
                logged.recorded_at,
                payload_e.memory_id,
            ],
        )
