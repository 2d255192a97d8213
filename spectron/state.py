"""get_state: entities, attribute chains and relations visible from a scope, in three queries."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from psycopg import AsyncConnection

from projectors.entities import name_key
from spectron.models import Attribute, AttributeRef, Entity, Relation, State
from spectron.recall import visibility_params, visible
from spectron.scope import Scope

_ENTITIES = f"""
SELECT e.scope_key, e.scope, e.type, e.name_key, e.name FROM entities e
WHERE {visible("e")}
ORDER BY e.type, e.name_key, e.scope_key
"""
_ATTRIBUTES = f"""
SELECT a.scope_key, a.type, a.name_key, a.key, a.value, a.cardinality, a.memory_id, a.principal,
       a.recorded_at, a.extractor, s.value, s.memory_id, s.principal, s.recorded_at
FROM attribute_values a
JOIN entities e USING (scope_key, type, name_key)
LEFT JOIN attribute_values s
  ON s.memory_id = a.superseded_by_memory AND s.ordinal = a.superseded_by_ordinal
WHERE {visible("e")}
ORDER BY a.key, a.recorded_at, a.partition, a."offset", a.ordinal
"""
_RELATIONS = f"""
SELECT r.scope_key, r.subject_type, r.subject_name, r.predicate, r.object_type, r.object_name,
       r.scope, r.memory_id, r.principal, r.recorded_at
FROM relations r
WHERE {visible("r")}
ORDER BY r.recorded_at, r.memory_id, r.ordinal
"""


async def load_state(conn: AsyncConnection[Any], scope: Scope, pending: int = 0) -> State:
    """The entity state visible from `scope`."""
    params = visibility_params(scope)
    cur = await conn.execute(_ENTITIES, params)
    entity_rows = await cur.fetchall()
    cur = await conn.execute(_ATTRIBUTES, params)
    attributes: dict[tuple[str, str, str], list[Attribute]] = defaultdict(list)
    for row in await cur.fetchall():
        superseded = (
            AttributeRef(value=row[10], memory_id=row[11], principal=row[12], recorded_at=row[13])
            if row[10] is not None
            else None
        )
        attributes[(row[0], row[1], row[2])].append(
            Attribute(
                key=row[3],
                value=row[4],
                cardinality=row[5],
                memory_id=row[6],
                principal=row[7],
                recorded_at=row[8],
                extractor=row[9],
                superseded_by=superseded,
            )
        )
    cur = await conn.execute(_RELATIONS, params)
    relations: list[Relation] = []
    by_subject: dict[tuple[str, str, str], list[Relation]] = defaultdict(list)
    for row in await cur.fetchall():
        relation = Relation(
            subject_type=row[1],
            subject=row[2],
            predicate=row[3],
            object_type=row[4],
            object=row[5],
            scope=row[6],
            memory_id=row[7],
            principal=row[8],
            recorded_at=row[9],
        )
        relations.append(relation)
        by_subject[(row[0], row[1], name_key(row[2]))].append(relation)
    entities = [
        Entity(
            type=etype,
            name=name,
            scope=escope,
            attributes=attributes.get((skey, etype, nkey), []),
            relations=by_subject.get((skey, etype, nkey), []),
        )
        for skey, escope, etype, nkey, name in entity_rows
    ]
    return State(scope=scope, entities=entities, relations=relations, pending=pending)
