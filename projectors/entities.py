"""EntityProjector: facts into entities, attribute supersession chains and relations.

The later write wins: a chain is ordered by the asserting memory's log time with the fixed
tie-break (partition, offset, ordinal), never by when the facts were extracted or projected, so any
interleaving of workers and any replay yields the same chains. A value repeating the one before it
is a corroboration, not a conflict: only a different later value supersedes.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from projectors.base import ProjectionContext
from spectron.events import (
    EnrichmentFailed,
    EntityTypeRegistered,
    FactsExtracted,
    LoggedEvent,
    MemoryRecorded,
)
from spectron.facts import EntityRef, Facts, name_key
from spectron.scope import scope_key
from spectron.supersession import successors

CALLER_EXTRACTOR = "caller"

_CLAIM = """
INSERT INTO fact_sources (memory_id, extractor, recorded_at) VALUES (%s, %s, %s)
ON CONFLICT (memory_id) DO NOTHING RETURNING memory_id
"""
_MEMORY = """
SELECT scope, scope_key, principal, recorded_at, partition, "offset" FROM memories
WHERE memory_id = %s
"""
_ENTITY = """
INSERT INTO entities (scope_key, scope, type, name_key, name, first_memory_id, first_recorded_at,
                      first_seen_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""
_MENTION = """
INSERT INTO entity_mentions (memory_id, scope_key, type, name_key, name, memory_recorded_at,
                             seen_at, partition, "offset", ordinal)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""
_VALUE = """
INSERT INTO attribute_values (memory_id, ordinal, scope_key, type, name_key, key, value,
    cardinality, extractor, principal, recorded_at, partition, "offset", valid_from, source_event)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_CHAIN = """
SELECT memory_id, ordinal, value, recorded_at, superseded_by_memory, superseded_by_ordinal,
       valid_from
FROM attribute_values
WHERE scope_key = %s AND type = %s AND name_key = %s AND key = %s AND cardinality = 'single'
ORDER BY recorded_at, partition, "offset", ordinal
"""
_LINK = """
UPDATE attribute_values
SET superseded_by_memory = %s, superseded_by_ordinal = %s, superseded_at = %s
WHERE memory_id = %s AND ordinal = %s
"""
_RELATION = """
INSERT INTO relations (memory_id, ordinal, scope_key, scope, subject_type, subject_name, predicate,
    object_type, object_name, extractor, principal, recorded_at, valid_from)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""
_TYPE = """
INSERT INTO entity_types (scope_key, scope, name, definition, recorded_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (scope_key, name) DO UPDATE
SET definition = EXCLUDED.definition, recorded_at = EXCLUDED.recorded_at
"""
_FAILURE = """
INSERT INTO enrichment_failures (memory_id, enricher, reason, recorded_at, partition, "offset")
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""


async def project_entities(
    cur: AsyncCursor[Any], logged: LoggedEvent, ctx: ProjectionContext
) -> None:
    """Apply one event to the entity projection."""
    event = logged.event
    if isinstance(event, MemoryRecorded) and event.payload.facts is not None:
        await _apply_facts(cur, event.event_id, CALLER_EXTRACTOR, event.payload.facts, logged)
    elif isinstance(event, FactsExtracted):
        payload = event.payload
        await _apply_facts(cur, payload.memory_id, payload.extractor, payload.facts, logged)
    elif isinstance(event, EntityTypeRegistered):
        definition = event.payload.entity_type
        await cur.execute(
            _TYPE,
            [
                scope_key(event.scope),
                Jsonb(event.scope),
                definition.name,
                Jsonb(definition.model_dump(mode="json")),
                logged.recorded_at,
            ],
        )
    elif isinstance(event, EnrichmentFailed):
        failure = event.payload
        await cur.execute(
            _FAILURE,
            [
                failure.memory_id,
                failure.enricher,
                failure.reason,
                logged.recorded_at,
                logged.position.partition,
                logged.position.offset,
            ],
        )


async def _apply_facts(
    cur: AsyncCursor[Any], memory_id: uuid.UUID, extractor: str, facts: Facts, logged: LoggedEvent
) -> None:
    await cur.execute(_MEMORY, [memory_id])
    row = await cur.fetchone()
    if row is None:
        return  # the memory itself never projected (dead-lettered): nothing to attach facts to
    scope, skey, principal, recorded_at, partition, offset = row
    await cur.execute(_CLAIM, [memory_id, extractor, logged.recorded_at])
    # RETURNING and a fetch rather than rowcount: under the driver's pipeline mode, only a fetch
    # waits for the statement's result
    if await cur.fetchone() is None:
        return  # this memory's facts were already projected (redelivery or a second extractor)

    mentions = 0

    async def ensure(ref: EntityRef) -> str:
        nonlocal mentions
        key = name_key(ref.name)
        await cur.execute(
            _ENTITY,
            [
                skey,
                Jsonb(scope),
                ref.type,
                key,
                ref.name,
                memory_id,
                recorded_at,
                logged.recorded_at,
            ],
        )
        await cur.execute(
            _MENTION,
            [
                memory_id,
                skey,
                ref.type,
                key,
                ref.name,
                recorded_at,
                logged.recorded_at,
                logged.position.partition,
                logged.position.offset,
                mentions,
            ],
        )
        mentions += 1
        return key

    for ref in facts.entities:
        await ensure(ref)
    for ordinal, attribute in enumerate(facts.attributes):
        entity_key = await ensure(attribute.entity)
        await cur.execute(
            _VALUE,
            [
                memory_id,
                ordinal,
                skey,
                attribute.entity.type,
                entity_key,
                attribute.key,
                attribute.value,
                attribute.cardinality,
                extractor,
                principal,
                recorded_at,
                partition,
                offset,
                logged.recorded_at,
                logged.event.event_id,
            ],
        )
        if attribute.cardinality == "single":
            await relink_chain(cur, skey, attribute.entity.type, entity_key, attribute.key)
    for ordinal, relation in enumerate(facts.relations):
        await ensure(relation.subject)
        await ensure(relation.object)
        await cur.execute(
            _RELATION,
            [
                memory_id,
                ordinal,
                skey,
                Jsonb(scope),
                relation.subject.type,
                relation.subject.name,
                relation.predicate,
                relation.object.type,
                relation.object.name,
                extractor,
                principal,
                recorded_at,
                logged.recorded_at,
            ],
        )


async def relink_chain(cur: AsyncCursor[Any], skey: str, etype: str, ekey: str, key: str) -> None:
    """Store each value's successor per spectron.supersession.successors; values with none are current."""
    await cur.execute(_CHAIN, [skey, etype, ekey, key])
    chain = await cur.fetchall()
    for row, after in zip(chain, successors([row[2] for row in chain]), strict=True):
        memory_id, ordinal, _, _, old_memory, old_ordinal, _ = row
        target = chain[after] if after is not None else None
        want = (target[0], target[1]) if target else (None, None)
        if want != (old_memory, old_ordinal):
            await cur.execute(
                _LINK, [want[0], want[1], target[6] if target else None, memory_id, ordinal]
            )
