"""The answer-accuracy harness (benchmarks/answers.py) against a recorded LLM on loopback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spectron.embedding.hashing import HashingEmbedder
from tests.recorded_llm import Reply, completion, recorded_server

# benchmarks/ sits beside the installed packages, not inside them: import it from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.answers import AnswersConfig, Endpoint, run_answers

CONVERSATION = {
    "sample_id": "conv-test",
    "conversation": {
        "speaker_a": "Ana",
        "speaker_b": "Ben",
        "session_1_date_time": "1:00 pm on 3 May, 2023",
        "session_1": [
            {"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a grey kitten called Miso."},
            {"speaker": "Ben", "dia_id": "D1:2", "text": "Lovely! I am training for a marathon."},
            {"speaker": "Ana", "dia_id": "D1:3", "text": "Which marathon are you running?"},
        ],
        "session_2_date_time": "9:00 am on 20 June, 2023",
        "session_2": [
            {"speaker": "Ben", "dia_id": "D2:1", "text": "I ran the Lisbon marathon yesterday."},
            {"speaker": "Ana", "dia_id": "D2:2", "text": "Miso learnt to open the fridge."},
        ],
    },
    "qa": [
        {"question": "What is the name of Ana's kitten?", "answer": "Miso", "evidence": ["D1:1"],
         "category": 4},
        {"question": "When did Ben run the Lisbon marathon?", "answer": "19 June 2023",
         "evidence": ["D2:1"], "category": 2},
        {"question": "What colour is Ana's kitten?", "answer": "grey", "evidence": ["D1:1"],
         "category": 1},
        {"question": "What did Ben say about Paris?", "adversarial_answer": "x", "evidence": [],
         "category": 5},
    ],
}  # fmt: skip

# what the recorded answerer says to each question, and the recorded judge's label of each answer
ANSWERS = {
    "What is the name of Ana's kitten?": "Miso",
    "When did Ben run the Lisbon marathon?": "20 June 2023",
    "What colour is Ana's kitten?": "Grey.",
}
LABELS = {"Miso": "CORRECT", "20 June 2023": "WRONG", "Grey.": "CORRECT"}


def _field(prompt: str, name: str) -> str:
    return prompt.split(f"{name}: ", 1)[1].split("\n", 1)[0]


def recorded_llm(seen: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Reply]:
    """The recorded reply to one request: an answer, or a judgement, by the schema it asks for."""

    def reply(body: dict[str, Any]) -> Reply:
        seen.append(body)
        prompt = body["messages"][0]["content"]
        if body["response_format"]["json_schema"]["name"] == "answer":
            content = {"answer": ANSWERS[_field(prompt, "Question")]}
        else:
            label = LABELS[_field(prompt, "Generated answer")]
            content = {"reasoning": "recorded", "label": label}
        return 200, completion(json.dumps(content))

    return reply


@pytest.mark.timeout(180)
async def test_j_score_from_recalled_context(tmp_path: Path, database: str) -> None:
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([CONVERSATION]))
    seen: list[dict[str, Any]] = []
    with recorded_server({"locomo": recorded_llm(seen)}, b"") as (base_url, _):
        config = AnswersConfig(
            answerer=Endpoint(base_url("locomo"), "answerer-model"),
            judge=Endpoint(base_url("locomo"), "judge-model", timeout=30),
            path=data,
            top_k=2,
        )
        results = await run_answers(config, database, HashingEmbedder())

    assert results["questions"] == 3  # the adversarial question (category 5) is left out
    assert results["j"] == pytest.approx(2 / 3, abs=1e-4)
    assert results["j_by_category"] == {"multi-hop": 1.0, "single-hop": 1.0, "temporal": 0.0}
    assert results["j_by_split"] == {"conversations 0-4": pytest.approx(2 / 3, abs=1e-4)}
    assert results["model_errors"] == 0
    answer_requests = [b for b in seen if b["model"] == "answerer-model"]
    judge_requests = [b for b in seen if b["model"] == "judge-model"]
    assert len(answer_requests) == len(judge_requests) == 3
    # the answerer saw what recall found, with speaker and session date
    marathon = next(b for b in answer_requests if "Lisbon" in b["messages"][0]["content"])
    assert (
        "Ben (9:00 am on 20 June, 2023): I ran the Lisbon marathon yesterday."
        in (marathon["messages"][0]["content"])
    )
    # the judge saw the question, the gold answer and the generated answer
    judged = next(b for b in judge_requests if "Lisbon" in b["messages"][0]["content"])
    assert "Gold answer: 19 June 2023" in judged["messages"][0]["content"]
    assert "Generated answer: 20 June 2023" in judged["messages"][0]["content"]


@pytest.mark.timeout(180)
async def test_a_failing_model_counts_as_wrong(tmp_path: Path, database: str) -> None:
    data = tmp_path / "locomo.json"
    data.write_text(json.dumps([CONVERSATION]))
    with recorded_server({"broken": (500, b"upstream down")}, b"") as (base_url, _):
        config = AnswersConfig(
            answerer=Endpoint(base_url("broken"), "m"),
            judge=Endpoint(base_url("broken"), "m"),
            path=data,
            top_k=2,
        )
        results = await run_answers(config, database, HashingEmbedder())
    assert results["j"] == 0.0 and results["model_errors"] == 3
    assert all("HTTP 500" in g["reasoning"] for g in results["graded"])
