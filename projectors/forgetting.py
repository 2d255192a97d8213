"""ForgettingProjector: purge forgotten memories, and everything derived from them, from projections.

The purge leaves exactly what a replay of the log yields once the memories' keys are destroyed
(their records are skipped): rows of the memories go, attribute chains they were part of are
relinked, and entities they first mentioned take the first mention that remains, or go.
`forget` runs the same purge synchronously; projecting the tombstone later finds nothing left.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncCursor

from projectors.base import ProjectionContext
from projectors.entities import relink_chain
from spectron.events import LoggedEvent, MemoriesForgotten
from spectron.sealing import record_memory_id

# staged vectors before their memories: a vector mover locks the staged rows first, then the
# memories, and a purge taking them in the other order deadlocks with it (forget would fail)
_DELETE_STAGED = "DELETE FROM staged_vectors WHERE memory_id = ANY(%s)"
_DELETE_BY_MEMORY = (
    "DELETE FROM memories WHERE memory_id = ANY(%s) RETURNING memory_id",
    "DELETE FROM reflections WHERE reflection_id = ANY(%s)",
    "DELETE FROM relations WHERE memory_id = ANY(%s)",
    "DELETE FROM fact_sources WHERE memory_id = ANY(%s)",
    "DELETE FROM enrichment_failures WHERE memory_id = ANY(%s)",
)
_DELETE_VALUES = """
DELETE FROM attribute_values WHERE memory_id = ANY(%s)
RETURNING scope_key, type, name_key, key
"""
_DELETE_MENTIONS = """
DELETE FROM entity_mentions WHERE memory_id = ANY(%s) RETURNING scope_key, type, name_key
"""
_FIRST_MENTION = """
SELECT name, memory_id, memory_recorded_at, seen_at FROM entity_mentions
WHERE scope_key = %s AND type = %s AND name_key = %s
ORDER BY partition, "offset", ordinal LIMIT 1
"""
_REFRESH_ENTITY = """
UPDATE entities SET name = %s, first_memory_id = %s, first_recorded_at = %s, first_seen_at = %s
WHERE scope_key = %s AND type = %s AND name_key = %s
"""
_DELETE_ENTITY = "DELETE FROM entities WHERE scope_key = %s AND type = %s AND name_key = %s"
# dead letters naming one of the memories (the id's text in their bytes), confirmed by reading
# each one's head: a replay skips a forgotten memory's records, so it has no dead letter either
_DEAD_LETTERS = """
SELECT d.consumer, d.partition, d."offset", d.value FROM dead_letters d
WHERE EXISTS (
  SELECT FROM unnest(%s::uuid[]) AS m(id) WHERE position(convert_to(m.id::text, 'UTF8') IN d.value) > 0
)
"""
_DELETE_DEAD_LETTER = (
    'DELETE FROM dead_letters WHERE consumer = %s AND partition = %s AND "offset" = %s'
)


async def purge_memories(cur: AsyncCursor[Any], memory_ids: Sequence[uuid.UUID]) -> int:
    """Remove the memories and what was derived from them; return how many memory rows went."""
    ids = list(memory_ids)
    await cur.execute(_DELETE_STAGED, [ids])
    await cur.execute(_DELETE_BY_MEMORY[0], [ids])
    # counted from RETURNING: under the projection driver's pipeline mode rowcount is not known
    purged = len(await cur.fetchall())
    for statement in _DELETE_BY_MEMORY[1:]:
        await cur.execute(statement, [ids])
    await cur.execute(_DEAD_LETTERS, [ids])
    for consumer, partition, offset, value in await cur.fetchall():
        if record_memory_id(bytes(value)) in ids:
            await cur.execute(_DELETE_DEAD_LETTER, [consumer, partition, offset])
    await cur.execute(_DELETE_VALUES, [ids])
    chains = sorted({tuple(row) for row in await cur.fetchall()})
    for skey, etype, ekey, key in chains:
        await relink_chain(cur, skey, etype, ekey, key)
    await cur.execute(_DELETE_MENTIONS, [ids])
    entities = sorted({tuple(row) for row in await cur.fetchall()})
    for skey, etype, ekey in entities:
        await cur.execute(_FIRST_MENTION, [skey, etype, ekey])
        first = await cur.fetchone()
        if first is None:
            await cur.execute(_DELETE_ENTITY, [skey, etype, ekey])
        else:
            await cur.execute(_REFRESH_ENTITY, [*first, skey, etype, ekey])
    return purged


async def project_forgetting(
    cur: AsyncCursor[Any], logged: LoggedEvent, ctx: ProjectionContext
) -> None:
    """Apply a MemoriesForgotten tombstone: purge whatever of those memories is still projected."""
    if isinstance(logged.event, MemoriesForgotten):
        await purge_memories(cur, logged.event.payload.memory_ids)
