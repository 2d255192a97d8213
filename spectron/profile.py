"""profile: counts, persisted reflections and recent memories visible from a scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection

from spectron.models import Profile, ProfileReflection, State
from spectron.recall import counts_kept, memory_item, visibility_params, visible
from spectron.scope import Scope

RECENT = 10
REFLECTIONS = 20

_AS_OF = "(%(as_of)s::timestamptz IS NULL OR {0}.recorded_at <= %(as_of)s)"
# now: the counts the database keeps per scope (projectors/migrations/0009_memory_counts.sql),
# a few rows per visible scope whatever the store's size (unless a replay has them deferred)
_COUNTS = f"""
SELECT c.memory_category, c.scope_key, c.principal, c.memories FROM memory_counts c
WHERE {visible("c")} ORDER BY 1, 2, 3
"""
# as of a past time, or while the counts are deferred: the memories, counted one by one
_COUNTS_AS_OF = f"""
SELECT m.memory_category, m.scope_key, m.principal, count(*) FROM memories m
WHERE {visible("m")} AND {_AS_OF.format("m")}
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
_RECENT = f"""
SELECT m.memory_id, m.content, m.memory_category, m.metadata, m.scope, m.principal,
       m.recorded_at,
       m.embedding IS NOT NULL AND (%(as_of)s::timestamptz IS NULL OR m.embedded_at <= %(as_of)s)
FROM memories m WHERE {visible("m")} AND {_AS_OF.format("m")}
ORDER BY m.recorded_at DESC, m.partition, m."offset" DESC LIMIT %(limit)s
"""
_REFLECTIONS = f"""
SELECT r.reflection_id, r.query, r.summary, r.sources, r.uncertain, r.reasoner, r.scope,
       r.principal, r.recorded_at
FROM reflections r WHERE {visible("r")} AND {_AS_OF.format("r")}
ORDER BY r.recorded_at DESC, r.partition, r."offset" DESC LIMIT %(limit)s
"""


def _scope_label(scope_key: str) -> str:
    return "/".join(f"{k}={v}" for k, v in orjson.loads(scope_key).items())


async def load_profile(
    conn: AsyncConnection[Any],
    scope: Scope,
    state: State,
    pending: int = 0,
    as_of: datetime | None = None,
) -> Profile:
    """The profile of `scope` (as of a log time), around an already loaded entity state."""
    params = {**visibility_params(scope), "as_of": as_of}
    by_category: dict[str, int] = {}
    by_scope: dict[str, int] = {}
    by_principal: dict[str, int] = {}
    kept = as_of is None and await counts_kept(conn)
    cur = await conn.execute(_COUNTS if kept else _COUNTS_AS_OF, params)
    for category, skey, principal, count in await cur.fetchall():
        by_category[category] = by_category.get(category, 0) + count
        label = _scope_label(skey)
        by_scope[label] = by_scope.get(label, 0) + count
        by_principal[principal] = by_principal.get(principal, 0) + count
    cur = await conn.execute(_RECENT, {**params, "limit": RECENT})
    recent = [memory_item(row) for row in await cur.fetchall()]
    cur = await conn.execute(_REFLECTIONS, {**params, "limit": REFLECTIONS})
    reflections = [
        ProfileReflection(
            id=row[0],
            query=row[1],
            summary=row[2],
            sources=row[3],
            uncertain=row[4],
            reasoner=row[5],
            scope=row[6],
            principal=row[7],
            recorded_at=row[8],
        )
        for row in await cur.fetchall()
    ]
    return Profile(
        scope=scope,
        state=state,
        reflections=reflections,
        counts_by_category=by_category,
        counts_by_scope=dict(sorted(by_scope.items())),
        counts_by_principal=dict(sorted(by_principal.items())),
        recent=recent,
        pending=pending,
    )
