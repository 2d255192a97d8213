"""Recall quality on LoCoMo: evidence recall@k of Spectron (hybrid, its ablations, dense, keyword)
beside BM25.

Each conversation's dialog turns are remembered in order in a scope of their own, as
"<speaker> (<session date>): <text>" with the turn's dia_id in the metadata. For every question of
categories 1-4, recall@k is the fraction of its evidence turns among the top k, averaged over
questions; overall and apart for conversations 0-4 (where the recall defaults were chosen) and
5-9 (held out). The data is read from ../shared/data/locomo (CC BY-NC 4.0), never copied into the
repo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.speed import BEFORE_TUNING, raw_embedding_rate
from benchmarks.stats import Stopwatch, distribution
from spectron import SpectronClient
from spectron.embedding import Embedder
from spectron.maintenance import catch_up
from spectron.recall import DEFAULT_TUNING, RecallTuning, search
from spectron.service import MemoryService

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo10.json"
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (5, 10, 20)
MODES = ("hybrid", "dense", "keyword")
TUNED_ON = 5  # recall defaults were chosen on conversations 0-4; 5-9 are held out
# hybrid with one component switched off at a time, and with all of them (recall before #15)
ABLATIONS: dict[str, tuple[str, RecallTuning]] = {
    "hybrid_no_neighbours": ("hybrid", replace(DEFAULT_TUNING, neighbour_weight=0.0)),
    "hybrid_no_bm25": ("hybrid", replace(DEFAULT_TUNING, bm25=False)),
    "hybrid_rrf60_equal": (
        "hybrid",
        replace(DEFAULT_TUNING, rrf_k=60, dense_weight=1.0, dense_pool=50),
    ),
    "hybrid_before": ("hybrid", BEFORE_TUNING),
    "keyword_no_bm25": ("keyword", replace(DEFAULT_TUNING, bm25=False)),
}
SQL_TIMED = {"hybrid": ("hybrid", DEFAULT_TUNING), **ABLATIONS}
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)")


@dataclass(frozen=True)
class Turn:
    """One dialog turn as remembered."""

    dia_id: str
    session: int
    content: str


@dataclass(frozen=True)
class Question:
    """A question with its normalised evidence dia_ids and the reference answer."""

    text: str
    category: int
    evidence: frozenset[str]
    answer: str = ""


@dataclass
class Conversation:
    """One LoCoMo sample: turns and answerable questions."""

    sample_id: str
    turns: list[Turn]
    questions: list[Question]
    dropped_evidence: int = 0
    questions_without_evidence: int = 0


@dataclass(frozen=True)
class LocomoConfig:
    """What to run: how many conversations, optionally only the first turns of each."""

    path: Path = DEFAULT_PATH
    conversations: int | None = None
    max_turns: int | None = None
    concurrency: int = 8
    raw_sample: int = 256
    modes: tuple[str, ...] = MODES
    ks: tuple[int, ...] = KS
    extra: dict[str, Any] = field(default_factory=dict)


def turn_content(speaker: str, date: str, turn: dict[str, Any]) -> str:
    """The remembered text of a turn: speaker, session date, text, and a shared photo's caption."""
    text = f"{speaker} ({date}): {turn['text']}"
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def normalize_evidence(raw: Sequence[str], known: set[str]) -> tuple[set[str], int]:
    """Evidence ids in canonical form ("D30:05" → "D30:5"); returns them and how many were dropped."""
    found: set[str] = set()
    dropped = 0
    for entry in raw:
        for part in re.split(r"[;,\s]+", entry.strip()):
            if not part:
                continue
            match = _EVIDENCE.fullmatch(part)
            dia_id = f"D{int(match.group(1))}:{int(match.group(2))}" if match else None
            if dia_id is not None and dia_id in known:
                found.add(dia_id)
            else:
                dropped += 1
    return found, dropped


def load_conversations(
    path: Path, limit: int | None = None, max_turns: int | None = None
) -> list[Conversation]:
    """Conversations of locomo10.json with their turns and category 1-4 questions."""
    samples = json.loads(path.read_text())
    out: list[Conversation] = []
    for sample in samples[:limit]:
        conv = sample["conversation"]
        sessions = sorted(
            (int(key.split("_")[1]) for key in conv if re.fullmatch(r"session_\d+", key)),
        )
        turns: list[Turn] = []
        for number in sessions:
            date = conv.get(f"session_{number}_date_time", "")
            for turn in conv[f"session_{number}"]:
                turns.append(
                    Turn(turn["dia_id"], number, turn_content(turn["speaker"], date, turn))
                )
        turns = turns[:max_turns]
        known = {t.dia_id for t in turns}
        conversation = Conversation(sample["sample_id"], turns, [])
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            evidence, dropped = normalize_evidence(qa.get("evidence", []), known)
            conversation.dropped_evidence += dropped
            if not evidence:
                conversation.questions_without_evidence += 1
                continue
            conversation.questions.append(
                Question(
                    str(qa["question"]),
                    int(qa["category"]),
                    frozenset(evidence),
                    str(qa.get("answer", "")),
                )
            )
        out.append(conversation)
    return out


def recall_at(ranked: Sequence[str], evidence: frozenset[str], k: int) -> float:
    """Fraction of the evidence among the first k ids."""
    return len(evidence & set(ranked[:k])) / len(evidence)


class Scores:
    """recall@k sums per system, overall, per category and per split of the conversations."""

    def __init__(self, ks: Sequence[int]) -> None:
        self.ks = tuple(ks)
        self.sums: dict[str, dict[int, float]] = defaultdict(lambda: dict.fromkeys(self.ks, 0.0))
        self.by_category: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.by_split: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.counts: dict[str, int] = defaultdict(int)

    def add(
        self, system: str, question: Question, ranked: Sequence[str], split: str = "all"
    ) -> None:
        """Score one ranked list (of a question in conversations `split`)."""
        self.counts[system] += 1
        for k in self.ks:
            self.sums[system][k] += recall_at(ranked, question.evidence, k)
        at10 = recall_at(ranked, question.evidence, 10)
        self.by_category[system][question.category].append(at10)
        self.by_split[system][split].append(at10)

    def splits(self) -> dict[str, dict[str, float]]:
        """Per system and split of the conversations: recall@10."""
        return {
            system: {name: round(sum(v) / len(v), 4) for name, v in sorted(by.items()) if v}
            for system, by in self.by_split.items()
        }

    def table(self) -> dict[str, dict[str, float]]:
        """Per system: recall@k averaged over questions."""
        return {
            system: {
                f"recall@{k}": round(total / self.counts[system], 4) for k, total in sums.items()
            }
            for system, sums in self.sums.items()
        }

    def categories(self) -> dict[str, dict[str, float]]:
        """Per system and category name: recall@10."""
        return {
            system: {
                CATEGORIES[c]: round(sum(v) / len(v), 4) for c, v in sorted(by_cat.items()) if v
            }
            for system, by_cat in self.by_category.items()
        }


def bm25_rankings(conversation: Conversation, k: int) -> list[list[str]] | None:
    """BM25 (bm25s, English stop words and Snowball stemmer) top-k dia_ids per question; None without bm25s."""
    try:
        import bm25s  # type: ignore[import-untyped]
    except ImportError:
        return None
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
    try:
        import Stemmer  # type: ignore[import-not-found]

        stemmer: Any = Stemmer.Stemmer("english")
    except ImportError:
        stemmer = None
    texts = [t.content for t in conversation.turns]
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    queries = bm25s.tokenize(
        [q.text for q in conversation.questions],
        stopwords="en",
        stemmer=stemmer,
        show_progress=False,
    )
    docs, _ = retriever.retrieve(queries, k=min(k, len(texts)), show_progress=False)
    return [[conversation.turns[int(i)].dia_id for i in row] for row in docs]


async def ingest(
    client: SpectronClient, conversations: list[Conversation], concurrency: int
) -> dict[str, Any]:
    """Remember every turn, then wait until all are embedded.

    Concurrent agents, one conversation each at a time, remember its turns in order (as a chat
    agent records a conversation), so a conversation's turns are in the log in dialog order.
    """
    queue = [(c.sample_id, turn) for c in conversations for turn in c.turns]
    latencies: list[float] = []
    pending = iter(conversations)

    async def agent() -> None:
        for conversation in pending:
            session = client.sessions.create(scope=conversation_scope(conversation.sample_id))
            for turn in conversation.turns:
                clock = Stopwatch()
                await session.remember(
                    turn.content,
                    memory_category="episodic",
                    metadata={"dia_id": turn.dia_id, "session": turn.session},
                )
                latencies.append(clock.ms())

    clock = Stopwatch()
    await asyncio.gather(*(agent() for _ in range(concurrency)))
    appended = clock.seconds()
    service = await client.service()
    missing = await catch_up(service, 3_600)
    total = clock.seconds()
    return {
        "turns": len(queue),
        "append_seconds": round(appended, 3),
        "embedded_seconds": round(total, 3),
        "missing_vectors": missing,
        "enrichment_per_second": round(len(queue) / total, 1),
        "remember_latency": distribution(latencies),
    }


def conversation_scope(sample_id: str) -> dict[str, str]:
    """The scope one LoCoMo conversation is remembered at."""
    return {"benchmark": "locomo", "conversation": sample_id}


async def query_embedding_latency(embedder: Embedder, queries: list[str]) -> dict[str, Any]:
    """The model's query embedding alone: distinct queries, then one query repeated (a cache shows)."""
    for query in queries[:5]:
        embedder.embed_query(query)
    distinct: list[float] = []
    for query in queries[5:]:
        clock = Stopwatch()
        embedder.embed_query(query)
        distinct.append(clock.ms())
    repeated: list[float] = []
    for _ in range(len(queries[5:])):
        clock = Stopwatch()
        embedder.embed_query(queries[0])
        repeated.append(clock.ms())
    return {"distinct": distribution(distinct), "repeated": distribution(repeated)}


async def ablation(
    service: MemoryService,
    conversation: Conversation,
    question: Question,
    mode: str,
    tuning: RecallTuning,
    top: int,
) -> list[str]:
    """The dia_ids recall ranks with `tuning` (the one SQL query; the question's vector is cached)."""
    vector = service.query_vectors.get(service.embedder.model_id, question.text)
    if vector is None:
        vector = service.embedder.embed_query(question.text)
    async with service.pool.connection() as conn:
        items = await search(
            conn,
            conversation_scope(conversation.sample_id),
            question.text,
            vector,
            top_k=top,
            mode=mode,  # type: ignore[arg-type]
            tuning=tuning,
        )
    return [str(item.metadata.get("dia_id")) for item in items]


async def run_locomo(config: LocomoConfig, uri: str, embedder: Embedder) -> dict[str, Any]:
    """Ingest, then score every category 1-4 question in every mode and with BM25."""
    conversations = load_conversations(config.path, config.conversations, config.max_turns)
    questions = [q for c in conversations for q in c.questions]
    top = max(config.ks)
    result: dict[str, Any] = {
        "data": str(config.path),
        "embedder": embedder.model_id,
        "conversations": len(conversations),
        "turns": sum(len(c.turns) for c in conversations),
        "questions": len(questions),
        "questions_by_category": {
            CATEGORIES[c]: sum(q.category == c for q in questions) for c in CATEGORIES
        },
        "questions_without_valid_evidence": sum(
            c.questions_without_evidence for c in conversations
        ),
        "evidence_ids_dropped": sum(c.dropped_evidence for c in conversations),
        "method": (
            f"recall top_k={top} once per question and mode; recall@k = share of evidence dia_ids in"
            " the first k, averaged over questions; one scope per conversation, its turns"
            " remembered in dialog order; ablations run the same SQL query with one component"
            " switched off"
        ),
    }
    sample = [t.content for c in conversations for t in c.turns][: config.raw_sample]
    result["raw_model"] = raw_embedding_rate(embedder, sample)
    result["query_embedding"] = await query_embedding_latency(
        embedder, [q.text for q in questions[:105]]
    )
    scores = Scores(config.ks)
    latencies: dict[str, list[float]] = defaultdict(list)
    sql_latencies: dict[str, list[float]] = defaultdict(list)
    client = SpectronClient(database=uri, embedder=embedder, extractor="none")
    try:
        result["ingest"] = await ingest(client, conversations, config.concurrency)
        result["ingest"]["ratio_to_raw_model"] = round(
            result["ingest"]["enrichment_per_second"] / result["raw_model"]["per_second"], 3
        )
        service = await client.service()
        legs: dict[str, int] = defaultdict(int)
        for number, conversation in enumerate(conversations):
            split = "conversations 0-4" if number < TUNED_ON else "conversations 5-9"
            session = client.sessions.create(scope=conversation_scope(conversation.sample_id))
            for question in conversation.questions:
                for mode in config.modes:
                    clock = Stopwatch()
                    recalled = await session.recall(
                        question.text,
                        top_k=top,
                        mode=mode,  # type: ignore[arg-type]
                        explain=mode == "hybrid",
                    )
                    latencies[mode].append(clock.ms())
                    ranked = [str(item.metadata.get("dia_id")) for item in recalled.items]
                    scores.add(f"spectron_{mode}", question, ranked, split)
                    for item in recalled.items[:10]:
                        if item.explanation is not None:
                            legs["+".join(item.explanation.legs)] += 1
                # the SQL query alone (vector cached), default and each ablation, same conditions
                for system, (mode, tuning) in SQL_TIMED.items():
                    clock = Stopwatch()
                    ranked = await ablation(service, conversation, question, mode, tuning, top)
                    sql_latencies[system].append(clock.ms())
                    if system in ABLATIONS:
                        scores.add(system, question, ranked, split)
            bm25 = bm25_rankings(conversation, top)
            if bm25 is not None:
                for question, ranked in zip(conversation.questions, bm25, strict=True):
                    scores.add("bm25", question, ranked, split)
    finally:
        await client.close()
    result["recall"] = scores.table()
    result["recall@10_by_category"] = scores.categories()
    result["recall@10_by_split"] = scores.splits()
    result["hybrid_top10_legs"] = dict(sorted(legs.items(), key=lambda kv: -kv[1]))
    result["tuning"] = {
        "default": vars(DEFAULT_TUNING),
        "ablations": {name: vars(tuning) for name, (_, tuning) in ABLATIONS.items()},
    }
    result["recall_latency"] = {
        mode: distribution(samples[5:]) for mode, samples in latencies.items()
    }
    result["recall_sql_latency"] = {
        system: distribution(samples[5:]) for system, samples in sql_latencies.items()
    }
    if "bm25" not in result["recall"]:
        result["bm25_missing"] = "bm25s is not installed: pip install -e '.[bench]'"
    return result
