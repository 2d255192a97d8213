"""get_state: entities, attribute chains and relations visible from a scope, in three queries."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import groupby
from typing import Any

from psycopg import AsyncConnection

from spectron.facts import name_key
from spectron.models import Attribute, AttributeRef, Disagreement, Entity, Relation, State
from spectron.recall import visibility_params, visible
from spectron.scope import Scope, scope_key
from spectron.supersession import successors

# as_of NULL: now. Facts count from the log time of the event that carried them (valid_from).
_AS_OF = "(%(as_of)s::timestamptz IS NULL OR coalesce({column}, {fallback}) <= %(as_of)s)"
_ENTITIES = f"""
SELECT e.scope_key, e.scope, e.type, e.name_key, e.name FROM entities e
WHERE {visible("e")} AND {_AS_OF.format(column="e.first_seen_at", fallback="e.first_recorded_at")}
ORDER BY e.type, e.name_key, e.scope_key
"""
_ATTRIBUTES = f"""
SELECT a.scope_key, a.type, a.name_key, a.key, a.value, a.cardinality, a.memory_id, a.principal,
       a.recorded_at, a.extractor, e.scope, a.partition, a."offset", a.ordinal
FROM attribute_values a
JOIN entities e USING (scope_key, type, name_key)
WHERE {visible("e")} AND {_AS_OF.format(column="a.valid_from", fallback="a.recorded_at")}
ORDER BY a.scope_key, a.type, a.name_key, a.key, a.recorded_at, a.partition, a."offset", a.ordinal
"""
_RELATIONS = f"""
SELECT r.scope_key, r.subject_type, r.subject_name, r.predicate, r.object_type, r.object_name,
       r.scope, r.memory_id, r.principal, r.recorded_at
FROM relations r
WHERE {visible("r")} AND {_AS_OF.format(column="r.valid_from", fallback="r.recorded_at")}
ORDER BY r.recorded_at, r.memory_id, r.ordinal
"""


async def load_state(
    conn: AsyncConnection[Any], scope: Scope, pending: int = 0, as_of: datetime | None = None
) -> State:
    """The entity state visible from `scope`, now or as it stood at log time `as_of`.

    Supersession is derived from the values that existed at that time, with the same rule the
    projector uses (spectron.supersession), so the past is answered exactly, not approximated. An
    entity named at several visible scopes is one entry; its values keep their scope.
    """
    params = {**visibility_params(scope), "as_of": as_of}
    cur = await conn.execute(_ENTITIES, params)
    entity_rows = await cur.fetchall()
    cur = await conn.execute(_ATTRIBUTES, params)
    attributes: dict[tuple[str, str], list[tuple[Any, Attribute]]] = defaultdict(list)
    for (_, etype, nkey, key), rows in groupby(await cur.fetchall(), key=lambda r: r[:4]):
        chain = list(rows)
        # only single-valued values supersede one another, within their scope; multi values accumulate
        singles = [i for i, row in enumerate(chain) if row[5] == "single"]
        later = successors([chain[i][4] for i in singles])
        newer_of = {
            i: chain[singles[j]] for i, j in zip(singles, later, strict=True) if j is not None
        }
        for index, row in enumerate(chain):
            newer = newer_of.get(index)
            attribute = Attribute(
                key=key,
                value=row[4],
                cardinality=row[5],
                scope=row[10],
                memory_id=row[6],
                principal=row[7],
                recorded_at=row[8],
                extractor=row[9],
                superseded_by=AttributeRef(
                    value=newer[4], memory_id=newer[6], principal=newer[7], recorded_at=newer[8]
                )
                if newer is not None
                else None,
            )
            # (key, log order) orders an entity's values across scopes: the later write last
            attributes[(etype, nkey)].append(((key, row[8], row[11], row[12], row[13]), attribute))
    cur = await conn.execute(_RELATIONS, params)
    relations: list[Relation] = []
    by_subject: dict[tuple[str, str], list[Relation]] = defaultdict(list)
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
        by_subject[(row[1], name_key(row[2]))].append(relation)
    entities = []
    for (etype, nkey), rows in groupby(entity_rows, key=lambda r: (r[2], r[3])):
        named = list(rows)
        values = [attr for _, attr in sorted(attributes.get((etype, nkey), []), key=_first)]
        entities.append(
            Entity(
                type=etype,
                name=named[0][4],
                scope=named[0][1],
                scopes=[row[1] for row in named],
                attributes=values,
                relations=by_subject.get((etype, nkey), []),
                disagreements=disagreements(values),
            )
        )
    return State(scope=scope, entities=entities, relations=relations, pending=pending)


def _first(pair: tuple[Any, Attribute]) -> Any:
    return pair[0]


def disagreements(attributes: list[Attribute]) -> list[Disagreement]:
    """Keys whose current single values differ between scopes, each scope's value once."""
    current: dict[str, dict[str, Attribute]] = defaultdict(dict)
    for attr in attributes:
        if attr.cardinality == "single" and attr.superseded_by is None:
            current[attr.key][scope_key(attr.scope)] = attr
    return [
        Disagreement(key=key, values=list(by_scope.values()))
        for key, by_scope in current.items()
        if len({attr.value for attr in by_scope.values()}) > 1
    ]
