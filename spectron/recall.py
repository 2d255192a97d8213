"""Recall: one SQL query fusing pgvector (cosine, HNSW) and full-text ranks, visibility in SQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.db import read_snapshot
from spectron.errors import RerankerUnavailable
from spectron.models import Leg, MemoryItem, RecallExplanation
from spectron.prompt_text import quoted, scope_label
from spectron.rerank import Reranker
from spectron.scope import Scope, ancestor_keys

RecallMode = Literal["hybrid", "dense", "keyword"]


@dataclass(frozen=True)
class RecallTuning:
    """How hybrid recall pools, scores and fuses its legs (defaults chosen on LoCoMo conversations 0-4).

    Each leg ranks its best `*_pool` memories: the dense leg by cosine distance, the keyword leg
    by BM25 (k1, b) over Postgres' English lexemes (stop words dropped, Snowball stems; with
    bm25=False by Postgres' cover density ranking, as before BM25). Weighted
    reciprocal rank fusion scores a memory dense_weight / (rrf_k + dense rank) + keyword_weight /
    (rrf_k + keyword rank). Then each of the best `neighbour_seeds` hits lends neighbour_weight
    times its score to the `neighbour_span` memories written just before and after it in its scope
    (the turns around a conversation turn), to those the query matched too (in a leg's pool, or
    holding a query word), and never past the lender: a neighbour's score stays below its best
    lender's. Modes "dense" and "keyword" are one leg alone. neighbour_weight=0
    (SPECTRON_RECALL_NEIGHBOURS=0) turns lending off.
    """

    rrf_k: int = 5
    dense_weight: float = 0.7
    keyword_weight: float = 1.0
    dense_pool: int = 30
    keyword_pool: int = 50
    bm25: bool = True
    bm25_k1: float = 1.2
    bm25_b: float = 0.3
    neighbour_weight: float = 0.3
    neighbour_span: int = 2
    neighbour_seeds: int = 50


DEFAULT_TUNING = RecallTuning()
RERANK_POOL = 30  # hybrid hits an (opt-in) reranker reorders before the top_k are kept
log = logging.getLogger(__name__)
NEIGHBOUR_CAP = 0.99  # a neighbour's score stays below this share of its best lender's
# BM25's term statistics come from the newest KEYWORD_SAMPLE memories in view (all of a LoCoMo
# conversation's turns); past it, query terms the sample holds at most PROBE_BUDGET times in all
# are looked up in the whole view, PROBE_CAP matches at most
KEYWORD_SAMPLE = 1_000
PROBE_BUDGET = 10
PROBE_CAP = 1_000


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


def _recall_sql(view: str, sample: str) -> str:
    """The recall query: `view` the visibility predicate on memories `m`, `sample` the sample's."""
    return f"""
WITH q AS (
  SELECT array_agg(DISTINCT lexeme) AS lexemes,
         tsquery_or_agg(plainto_tsquery('simple', lexeme)) AS tsq
  FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS lexeme
),
dense AS (
  SELECT memory_id, row_number() OVER (ORDER BY distance, memory_id) AS rank FROM (
    SELECT m.memory_id, m.embedding <=> %(vector)s::halfvec AS distance FROM memories m
    WHERE %(use_dense)s AND {_EMBEDDED} AND {view} {_FILTERS}
    ORDER BY m.embedding <=> %(vector)s::halfvec LIMIT %(dense_pool)s
  ) d
),
-- the keyword leg ranks by BM25 without reading every memory that holds a query term (at 100k
-- memories a common word is in half of them): term statistics come from a sample, the newest
-- `keyword_sample` memories in view. When the view holds no more, the sample is the whole view
-- and the ranking is exact BM25. Past that, the candidates are the sample's matches plus, looked
-- up by index in the whole view, the matches of the query's rarest terms (those the sample
-- holds at most `probe_budget` times together): a common term's matches outside the sample, whose
-- weight is small, are not read.
sample AS MATERIALIZED ({sample}),
-- a memory's query terms, with positions (setweight marks them, ts_filter keeps them: far cheaper
-- than unnesting every lexeme of the memory)
sample_terms AS MATERIALIZED (
  SELECT s.memory_id, t.lexeme, coalesce(array_length(t.positions, 1), 1) AS tf,
         length(s.tsv) AS len
  FROM sample s, q, unnest(ts_filter(setweight(s.tsv, 'A', q.lexemes), '{{a}}')) AS t
),
corpus AS MATERIALIZED (SELECT count(*)::float8 AS n FROM sample),
sample_df AS (SELECT lexeme, count(*) AS df FROM sample_terms GROUP BY lexeme),
rare AS (
  SELECT tsquery_or_agg(plainto_tsquery('simple', lexeme)) AS tsq FROM (
    SELECT l.lexeme, sum(coalesce(d.df, 0)) OVER (ORDER BY coalesce(d.df, 0), l.lexeme) AS hits
    FROM q, unnest(q.lexemes) AS l(lexeme) LEFT JOIN sample_df d USING (lexeme)
  ) ranked
  WHERE hits <= %(probe_budget)s
),
probe AS MATERIALIZED (
  SELECT m.memory_id, m.tsv FROM memories m, rare, corpus
  WHERE corpus.n >= %(keyword_sample)s AND rare.tsq IS NOT NULL AND m.tsv @@ rare.tsq
    AND {view} {_FILTERS}
  LIMIT %(probe_cap)s
),
-- UNION ALL keeps each memory's terms in lexeme order, so BM25 sums them in the same order as
-- unnesting did (a different order moves exact ties by a rounding error)
terms AS (
  SELECT memory_id, lexeme, tf, len FROM sample_terms
  UNION ALL
  SELECT p.memory_id, t.lexeme, coalesce(array_length(t.positions, 1), 1), length(p.tsv)
  FROM probe p, q, unnest(ts_filter(setweight(p.tsv, 'A', q.lexemes), '{{a}}')) AS t
  WHERE NOT EXISTS (SELECT FROM sample s WHERE s.memory_id = p.memory_id)
),
idf AS (
  SELECT l.lexeme,
         ln(1 + (greatest(corpus.n, coalesce(d.df, 0)) - coalesce(d.df, 0) + 0.5)
                / (coalesce(d.df, 0) + 0.5)) AS weight
  FROM (SELECT DISTINCT lexeme FROM terms) l LEFT JOIN sample_df d USING (lexeme), corpus
),
-- MATERIALIZED (corpus too): inlined, the planner re-ran the average once per matched term
avglen AS MATERIALIZED (
  SELECT avg(len)::float8 AS v FROM (SELECT DISTINCT memory_id, len FROM terms) d
),
bm25 AS (
  SELECT terms.memory_id,
         sum(idf.weight * tf * (%(bm25_k1)s::float8 + 1)
             / (tf + %(bm25_k1)s * (1 - %(bm25_b)s + %(bm25_b)s * len / avglen.v))) AS r
  FROM terms JOIN idf USING (lexeme), avglen
  GROUP BY terms.memory_id
),
-- the keyword ranking before BM25 (cover density, no term weights), kept for comparison
matched AS MATERIALIZED (
  SELECT m.memory_id, m.tsv FROM memories m, q
  WHERE %(use_keyword)s AND NOT %(bm25)s AND q.tsq IS NOT NULL AND m.tsv @@ q.tsq
    AND {view} {_FILTERS}
),
sparse AS (
  SELECT memory_id, row_number() OVER (ORDER BY r DESC, memory_id) AS rank FROM (
    SELECT memory_id, r FROM bm25 WHERE %(bm25)s
    UNION ALL
    SELECT mt.memory_id, ts_rank_cd(mt.tsv, q.tsq) FROM matched mt, q WHERE NOT %(bm25)s
    ORDER BY r DESC, memory_id LIMIT %(keyword_pool)s
  ) s
),
fused AS (
  SELECT hits.memory_id, dense.rank AS dense_rank, sparse.rank AS keyword_rank,
         -- a memory with no vector yet cannot rank in the dense leg: lend it its keyword rank
         -- there, or any memory matching one query word in both legs would bury the writer's
         -- own best keyword match while it waits for its embedding
         coalesce(
           %(dense_weight)s::float8 / (%(rrf_k)s + dense.rank),
           CASE WHEN %(use_dense)s AND NOT {_EMBEDDED}
                THEN %(dense_weight)s::float8 / (%(rrf_k)s + sparse.rank) END,
           0
         ) + coalesce(%(keyword_weight)s::float8 / (%(rrf_k)s + sparse.rank), 0) AS score
  FROM (SELECT memory_id FROM dense UNION SELECT memory_id FROM sparse) hits
  JOIN memories m USING (memory_id)
  LEFT JOIN dense USING (memory_id)
  LEFT JOIN sparse USING (memory_id)
),
seeds AS (
  SELECT f.memory_id, f.score, m.scope_key, m.partition, m."offset" FROM fused f
  JOIN memories m USING (memory_id)
  WHERE %(neighbour_weight)s::float8 > 0
  ORDER BY f.score DESC, f.memory_id LIMIT %(neighbour_seeds)s
),
-- a scope's memories are in log order within its partition: the turns written around a hit
beside AS (
  SELECT n.memory_id, n.tsv, s.memory_id AS lender, s.score AS lender_score FROM seeds s
  CROSS JOIN LATERAL (
    (SELECT m.memory_id, m.tsv FROM memories m
     WHERE m.scope_key = s.scope_key AND m.partition = s.partition AND m."offset" < s."offset"
       {_FILTERS}
     ORDER BY m."offset" DESC LIMIT %(neighbour_span)s)
    UNION ALL
    (SELECT m.memory_id, m.tsv FROM memories m
     WHERE m.scope_key = s.scope_key AND m.partition = s.partition AND m."offset" > s."offset"
       {_FILTERS}
     ORDER BY m."offset" LIMIT %(neighbour_span)s)
  ) n
),
-- lent only to a neighbour the query matched too (in a leg's pool, or holding a query word): a
-- hit's unrelated neighbour never joins the answer
lent AS (
  SELECT b.memory_id, sum(%(neighbour_weight)s::float8 * b.lender_score) AS score,
         max(b.lender_score) AS best_lender,
         array_agg(b.lender ORDER BY b.lender_score DESC, b.lender) AS lenders
  FROM beside b, q
  WHERE b.memory_id IN (SELECT memory_id FROM fused) OR b.tsv @@ q.tsq
  GROUP BY b.memory_id
),
-- and never lifted past its best lender: a run of similar notes lending each other cannot bury
-- a distinct best match, the neighbour comes back just behind the hit
capped AS (
  SELECT lent.memory_id, lent.lenders,
         least(lent.score, %(neighbour_cap)s * lent.best_lender - coalesce(fused.score, 0)) AS score
  FROM lent LEFT JOIN fused USING (memory_id)
  WHERE %(neighbour_cap)s * lent.best_lender > coalesce(fused.score, 0)
)
SELECT m.memory_id, m.content, m.memory_category, m.metadata, m.scope, m.principal, m.recorded_at,
       {_EMBEDDED} AS embedded,
       coalesce(fused.score, 0) + coalesce(capped.score, 0) AS score,
       fused.dense_rank, fused.keyword_rank, fused.score AS own_score, capped.score AS lent_score,
       capped.lenders
FROM (SELECT memory_id FROM fused UNION SELECT memory_id FROM capped) hits
JOIN memories m USING (memory_id)
LEFT JOIN fused USING (memory_id)
LEFT JOIN capped USING (memory_id)
ORDER BY score DESC, m.recorded_at DESC, m.memory_id
LIMIT %(top_k)s
"""


# the keyword sample: the newest memories in view (ties: the greater id first)
_SAMPLE = f"""
  SELECT m.memory_id, m.tsv FROM memories m, q
  WHERE %(use_keyword)s AND %(bm25)s AND q.tsq IS NOT NULL AND {VISIBLE} {_FILTERS}
  ORDER BY m.recorded_at DESC, m.memory_id DESC LIMIT %(keyword_sample)s
"""
# the same memories, taken scope by scope from the (scope_key, recorded_at, memory_id) index: the
# newest of each visible scope by index alone, then the newest of those. Reading the view's newest
# rows in time order instead, a leaf fetched ~14,000 rows for its 1,000 (8 ms at 100k)
_SAMPLE_BY_KEYS = f"""
  SELECT m.memory_id, m.tsv FROM (
    SELECT newest.memory_id FROM q, unnest(%(view_keys)s::text[]) AS v(scope_key)
    CROSS JOIN LATERAL (
      SELECT m.memory_id, m.recorded_at FROM memories m
      WHERE m.scope_key = v.scope_key {_FILTERS}
      ORDER BY m.recorded_at DESC, m.memory_id DESC LIMIT %(keyword_sample)s
    ) newest
    WHERE %(use_keyword)s AND %(bm25)s AND q.tsq IS NOT NULL
    ORDER BY newest.recorded_at DESC, newest.memory_id DESC LIMIT %(keyword_sample)s
  ) s JOIN memories m USING (memory_id)
"""
# a view named by its scope keys (view_keys); the btree and GIN indexes that lead with scope_key
# serve it, where the jsonb containment of VISIBLE meant bitmaps of the whole view
VIEW_BY_KEYS = "m.scope_key = ANY(%(view_keys)s)"
RECALL_SQL = _recall_sql(VISIBLE, _SAMPLE)
RECALL_BY_KEYS_SQL = _recall_sql(VIEW_BY_KEYS, _SAMPLE_BY_KEYS)
# a view of at most this many scope keys is named key by key
VIEW_KEYS_MAX = 64
# the keys come from the counts (migration 0009), kept in the transaction that inserts or deletes
# memories; a replay that deferred them (projectors.replay, under this projection_meta key: the
# core does not import the projectors) leaves them unknown until recounted
COUNTS_DEFERRED = "deferred_index:memory_counts"
_VIEW_KEYS = """
SELECT array_agg(c.scope_key ORDER BY c.scope_key) FROM (
  SELECT DISTINCT scope_key FROM memory_counts
  WHERE scope @> %(scope)s OR scope_key = ANY(%(ancestors)s)
  LIMIT %(most)s + 1
) c
HAVING count(*) <= %(most)s
   AND NOT EXISTS (SELECT FROM projection_meta WHERE key = %(deferred)s)
"""
_COUNTS_KEPT = "SELECT NOT EXISTS (SELECT FROM projection_meta WHERE key = %s)"


async def counts_kept(conn: AsyncConnection[Any]) -> bool:
    """Whether memory_counts is current (False while a replay has the counts deferred)."""
    cur = await conn.execute(_COUNTS_KEPT, [COUNTS_DEFERRED])
    row = await cur.fetchone()
    return bool(row and row[0])


def visibility_params(scope: Scope) -> dict[str, Any]:
    """Bind parameters for the VISIBLE fragment."""
    return {"scope": Jsonb(scope), "ancestors": ancestor_keys(scope)}


async def view_keys(conn: AsyncConnection[Any], scope: Scope) -> list[str] | None:
    """The scope keys of every memory in view of `scope`, or None when more than VIEW_KEYS_MAX
    (or while a replay has the counts deferred): then recall tests each row's scope instead."""
    params = {**visibility_params(scope), "most": VIEW_KEYS_MAX, "deferred": COUNTS_DEFERRED}
    cur = await conn.execute(_VIEW_KEYS, params)
    row = await cur.fetchone()
    if row is None:
        return None
    return list(row[0] or [])


async def recall_sql(conn: AsyncConnection[Any], scope: Scope, params: dict[str, Any]) -> str:
    """The recall query for `scope`'s view, its keys (or None) bound into `params`."""
    params["view_keys"] = await view_keys(conn, scope)
    return RECALL_SQL if params["view_keys"] is None else RECALL_BY_KEYS_SQL


def recall_params(
    scope: Scope,
    query: str,
    vector: np.ndarray[Any, Any] | None,
    *,
    top_k: int,
    memory_category: str | None = None,
    metadata: dict[str, Any] | None = None,
    mode: RecallMode = "hybrid",
    as_of: datetime | None = None,
    tuning: RecallTuning = DEFAULT_TUNING,
) -> dict[str, Any]:
    """Bind parameters of the recall query."""
    use_dense = mode in ("hybrid", "dense") and vector is not None
    return {
        **visibility_params(scope),
        "query": query,
        "vector": vector if use_dense else None,
        "use_dense": use_dense,
        "use_keyword": mode in ("hybrid", "keyword"),
        "category": memory_category,
        "metadata": Jsonb(metadata) if metadata else None,
        "dense_pool": max(top_k, tuning.dense_pool),
        "keyword_pool": max(top_k, tuning.keyword_pool),
        "rrf_k": tuning.rrf_k,
        "dense_weight": tuning.dense_weight,
        "keyword_weight": tuning.keyword_weight,
        "bm25": tuning.bm25,
        "bm25_k1": tuning.bm25_k1,
        "bm25_b": tuning.bm25_b,
        "keyword_sample": KEYWORD_SAMPLE,
        "probe_budget": PROBE_BUDGET,
        "probe_cap": PROBE_CAP,
        "neighbour_weight": tuning.neighbour_weight if mode == "hybrid" else 0.0,
        "neighbour_span": tuning.neighbour_span,
        "neighbour_seeds": tuning.neighbour_seeds,
        "neighbour_cap": NEIGHBOUR_CAP,
        "top_k": top_k,
        "as_of": as_of,
    }


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
    explain: bool = False,
    tuning: RecallTuning = DEFAULT_TUNING,
) -> list[MemoryItem]:
    """The top_k memories visible from `scope` for `query`, best first (as of a log time)."""
    params = recall_params(
        scope,
        query,
        vector,
        top_k=top_k,
        memory_category=memory_category,
        metadata=metadata,
        mode=mode,
        as_of=as_of,
        tuning=tuning,
    )
    # one snapshot for the view's keys and the query: under READ COMMITTED a batch that commits
    # between them could show its memory in a known scope but not one in a new
    async with read_snapshot(conn):
        # keep scanning the HNSW graph until enough rows pass the scope filter; relaxed order is
        # faster and costs nothing here: the dense leg ranks its pool by exact distance again
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute("SET LOCAL hnsw.ef_search = 100")
        query_sql = await recall_sql(conn, scope, params)
        # never a prepared statement: after five runs Postgres may switch to a generic plan, and
        # the generic plan of this many-parameter query is far off for other modes and tunings
        # (measured 300-800 ms instead of 7-20 ms on one LoCoMo conversation)
        cur = await conn.execute(query_sql, params, prepare=False)
        rows = await cur.fetchall()
    items = [memory_item(row, float(row[8])) for row in rows]
    if explain:
        items = [
            item.model_copy(update={"explanation": explanation(row)})
            for item, row in zip(items, rows, strict=True)
        ]
    return items


def explanation(row: Sequence[Any]) -> RecallExplanation:
    """Which legs found a recalled row, at what rank, and what its neighbours lent it."""
    dense_rank, keyword_rank, own, lent, lenders = row[9:14]
    legs: list[Leg] = []
    if dense_rank is not None:
        legs.append("dense")
    if keyword_rank is not None:
        legs.append("keyword")
    if lent is not None:
        legs.append("neighbour")
    return RecallExplanation(
        legs=legs,
        dense_rank=dense_rank,
        keyword_rank=keyword_rank,
        fused_score=float(own or 0.0),
        neighbour_score=float(lent or 0.0),
        lent_by=list(lenders or []),
        rerank_score=None,
    )


async def reranked(
    reranker: Reranker, query: str, items: list[MemoryItem], top_k: int
) -> list[MemoryItem]:
    """The top_k of `items` in the reranker's order; the fused order when it is unavailable."""
    try:
        scores = await asyncio.to_thread(reranker.rerank, query, [item.content for item in items])
    except RerankerUnavailable as exc:
        log.warning("reranker unavailable, recall keeps the fused order: %s", exc)
        return items[:top_k]
    order = sorted(range(len(items)), key=lambda index: -scores[index])  # stable: ties keep fusion
    out = []
    for index in order[:top_k]:
        item = items[index]
        if item.explanation is not None:
            why = item.explanation.model_copy(update={"rerank_score": scores[index]})
            item = item.model_copy(update={"explanation": why})
        out.append(item)
    return out


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
        explanation=None,
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
