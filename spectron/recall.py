"""Recall: one SQL query fusing pgvector (cosine, HNSW) and full-text ranks, visibility in SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.models import MemoryItem
from spectron.prompt_text import quoted, scope_label
from spectron.scope import Scope, ancestor_keys

RecallMode = Literal["hybrid", "dense", "keyword"]
RRF_K = 60


def visible(alias: str) -> str:
    """DESIGN rule 1 in SQL for rows of `alias` (columns scope, scope_key): see visibility_params.

    Sub-scopes by jsonb containment (GIN), parent scopes by canonical key (btree).
    """
    return f"({alias}.scope @> %(scope)s OR {alias}.scope_key = ANY(%(ancestors)s))"


VISIBLE = visible("m")

_FILTERS = """
  AND (%(category)s::text IS NULL OR m.memory_category = %(category)s)
  AND (%(metadata)s::jsonb IS NULL OR m.metadata @> %(metadata)s)
  AND (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
"""
# a vector counts from the log time of the event that carried it
_EMBEDDED = (
    "(m.embedding IS NOT NULL AND (%(as_of)s::timestamptz IS NULL OR m.embedded_at <= %(as_of)s))"
)

_RECALL = f"""
WITH q AS (
  SELECT tsquery_or_agg(plainto_tsquery('simple', lexeme)) AS tsq
  FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS lexeme
),
dense AS (
  SELECT memory_id, row_number() OVER (ORDER BY distance, memory_id) AS rank FROM (
    SELECT m.memory_id, m.embedding <=> %(vector)s::vector AS distance FROM memories m
    WHERE %(use_dense)s AND {_EMBEDDED} AND {VISIBLE} {_FILTERS}
    ORDER BY m.embedding <=> %(vector)s::vector LIMIT %(pool)s
  ) d
),
sparse AS (
  SELECT memory_id, row_number() OVER (ORDER BY r DESC, memory_id) AS rank FROM (
    SELECT m.memory_id, ts_rank_cd(m.tsv, q.tsq) AS r FROM memories m, q
    WHERE %(use_keyword)s AND q.tsq IS NOT NULL AND m.tsv @@ q.tsq AND {VISIBLE} {_FILTERS}
    ORDER BY r DESC LIMIT %(pool)s
  ) s
)
SELECT m.memory_id, m.content, m.memory_category, m.metadata, m.scope, m.principal, m.recorded_at,
       {_EMBEDDED} AS embedded,
       -- a memory with no vector yet cannot rank in the dense leg: lend it its keyword rank
       -- there, or any memory matching one query word in both legs would bury the writer's own
       -- best keyword match while it waits for its embedding
       coalesce(
         1.0 / (%(rrf_k)s + dense.rank),
         CASE WHEN %(use_dense)s AND NOT {_EMBEDDED} THEN 1.0 / (%(rrf_k)s + sparse.rank) END,
         0
       ) + coalesce(1.0 / (%(rrf_k)s + sparse.rank), 0) AS score
FROM (SELECT memory_id FROM dense UNION SELECT memory_id FROM sparse) hits
JOIN memories m USING (memory_id)
LEFT JOIN dense USING (memory_id)
LEFT JOIN sparse USING (memory_id)
ORDER BY score DESC, m.recorded_at DESC, m.memory_id
LIMIT %(top_k)s
"""


def visibility_params(scope: Scope) -> dict[str, Any]:
    """Bind parameters for the VISIBLE fragment."""
    return {"scope": Jsonb(scope), "ancestors": ancestor_keys(scope)}


async def search(
    conn: AsyncConnection[Any],
    scope: Scope,
    query: str,
    vector: np.ndarray[Any, Any] | None,
    *,
    top_k: int,
    memory_category: str | None = None,
    metadata: dict[str, Any] | None = None,
    mode: RecallMode = "hybrid",
    as_of: datetime | None = None,
) -> list[MemoryItem]:
    """The top_k memories visible from `scope` for `query`, best first (as of a log time)."""
    use_dense = mode in ("hybrid", "dense") and vector is not None
    params = {
        **visibility_params(scope),
        "query": query,
        "vector": vector if use_dense else None,
        "use_dense": use_dense,
        "use_keyword": mode in ("hybrid", "keyword"),
        "category": memory_category,
        "metadata": Jsonb(metadata) if metadata else None,
        "pool": max(top_k * 4, 50),
        "rrf_k": RRF_K,
        "top_k": top_k,
        "as_of": as_of,
    }
    async with conn.transaction():
        # keep scanning the HNSW graph until enough rows pass the scope filter; relaxed order is
        # faster and costs nothing here: the dense leg ranks its pool by exact distance again
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute("SET LOCAL hnsw.ef_search = 100")
        cur = await conn.execute(_RECALL, params)
        rows = await cur.fetchall()
    return [memory_item(row, float(row[8])) for row in rows]


def memory_item(row: Sequence[Any], score: float = 0.0) -> MemoryItem:
    """A MemoryItem from a row that starts (memory_id, content, category, metadata, scope,
    principal, recorded_at, embedded)."""
    return MemoryItem(
        id=row[0],
        content=row[1],
        memory_category=row[2],
        metadata=row[3],
        scope=row[4],
        principal=row[5],
        recorded_at=row[6],
        embedded=row[7],
        score=score,
    )


def format_items(items: list[MemoryItem], scope: Scope, pending: int = 0) -> str:
    """A compact block to paste into a prompt: per memory, a source line and its quoted content.

    The source line (category, scope, writer, log time, id) is the server's word; the content
    follows behind quote bars, so a memory cannot forge another's source or a new item.
    """
    if not items:
        return f"No relevant memories found (scope {scope_label(scope)})."
    lines = [f"Relevant memories (scope {scope_label(scope)}); each memory's text is quoted:"]
    for number, item in enumerate(items, 1):
        when = item.recorded_at.strftime("%Y-%m-%d %H:%M")
        lines.append(
            f"[{number}] {item.memory_category}; scope {scope_label(item.scope)};"
            f" by {item.principal}; {when} UTC; id {str(item.id)[:8]}"
        )
        lines.extend(quoted(item.content))
    if pending:
        lines.append(f"({pending} newer memories were matched by keyword only: not yet embedded)")
    return "\n".join(lines)
