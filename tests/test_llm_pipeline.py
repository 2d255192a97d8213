"""The LLM extractor and reasoner inside the running pipeline, against recorded completions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from spectron.errors import LLMError
from spectron.extraction.llm import LLMExtractor
from spectron.maintenance import catch_up, rebuild, state_hash
from spectron.models import State
from spectron.reasoning import ReflectionInput
from spectron.reasoning.llm import LLMReasoner
from tests.recorded_llm import RECORDED as EXTRACTION_ANSWERS
from tests.recorded_llm import Server, completion, recorded_server

INVENTED = str(uuid.uuid4())


def reflection_answer(sources: list[str]) -> bytes:
    return completion(
        json.dumps(
            {
                "summary": "Competitor X now charges $349/mo for Pro.",
                "sources": sources,
                "uncertain": ["only one agent saw the change"],
            }
        )
    )


@pytest.fixture
def llm() -> Iterator[Server]:
    recorded = dict(EXTRACTION_ANSWERS)
    recorded["reflect-garbage"] = (200, completion('{"summary": 7}'))
    with recorded_server(recorded, slow_body=reflection_answer([])) as server:
        yield server


async def test_llm_extractor_in_the_pipeline(make_client, llm: Server) -> None:
    url, _ = llm
    client = make_client(extractor=LLMExtractor(url("good"), "test-model", timeout=2))
    scope = {"org": "acme", "project": f"p{uuid.uuid4().hex[:6]}"}
    async with client.sessions.create(scope=scope) as s:
        await s.remember("The enterprise customer segment prioritises SOC2 compliance over cost.")
        state = await s.get_state()
    segment = state.entity("CustomerSegment", "enterprise")
    assert segment is not None and segment.current == {"top_priority": "SOC2 compliance"}
    assert segment.attributes[0].extractor == "llm:test-model@1"


@pytest.mark.parametrize("scenario", ["malformed", "injection", "huge-lists", "http-500", "slow"])
async def test_hostile_llm_answers_never_poison_anything(
    make_client, llm: Server, scenario
) -> None:
    url, _ = llm
    client = make_client(extractor=LLMExtractor(url(scenario), "test-model", timeout=0.5))
    scope = {"org": "acme", "project": f"p{uuid.uuid4().hex[:6]}"}
    async with client.sessions.create(scope=scope) as s:
        remembered = await s.remember("Competitor X's Pro tier costs $299/mo.")
        recalled = await s.recall("Pro tier price")
        state = await s.get_state(timeout=60)
    assert [item.id for item in recalled.items] == [remembered.id], (
        "the memory itself is recallable"
    )
    assert state.entities == [] and state.pending == 0
    service = await client.service()
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT enricher, reason FROM enrichment_failures WHERE memory_id = %s", [remembered.id]
        )
        [(enricher, reason)] = await cur.fetchall()
    assert enricher == "extract:llm:test-model@1" and reason
    assert await catch_up(service) == 0


def reflection_input() -> ReflectionInput:
    return ReflectionInput(
        query="competitor pricing",
        scope={"org": "acme"},
        memories=[],
        state=State(scope={"org": "acme"}, entities=[], relations=[]),
    )


def test_llm_reasoner_keeps_only_cited_ids_it_was_given(llm: Server) -> None:
    del llm  # the shared server is not needed: this test records its own answer
    known = uuid.uuid4()
    data = reflection_input()
    from spectron.models import MemoryItem

    item = MemoryItem(
        id=known,
        content="Competitor X's Pro tier costs $349/mo.",
        memory_category="knowledge",
        metadata={},
        scope={"org": "acme"},
        score=1.0,
        principal="agent:a",
        recorded_at="2026-11-25T10:00:00Z",  # type: ignore[arg-type]
        embedded=True,
    )
    data = ReflectionInput(query=data.query, scope=data.scope, memories=[item], state=data.state)
    recorded = {"cites": (200, reflection_answer([str(known), INVENTED]))}
    with recorded_server(recorded, slow_body=b"") as (base, seen):
        draft = LLMReasoner(base("cites"), "test-model", timeout=2).reflect(data)
    assert draft.sources == [known], "an invented id is dropped"
    assert draft.uncertain == ["only one agent saw the change"]
    prompt = seen.body["messages"][1]["content"]
    assert str(known) in prompt and "349/mo" in prompt, "the prompt carries the cited context"


@pytest.mark.parametrize("scenario", ["slow", "drip", "http-500", "reflect-garbage", "malformed"])
def test_llm_reasoner_failures_are_clear_and_bounded(llm: Server, scenario: str) -> None:
    url, _ = llm
    started = time.monotonic()
    with pytest.raises(LLMError):
        LLMReasoner(url(scenario), "test-model", timeout=0.5).reflect(reflection_input())
    assert time.monotonic() - started < 5, "a hung model must not hang the caller"


async def test_persisted_llm_reflection_replays_without_the_model(make_client) -> None:
    recorded = {"ok": (200, reflection_answer([]))}
    with recorded_server(recorded, slow_body=b"") as (base, seen):
        client = make_client(reasoner=LLMReasoner(base("ok"), "test-model", timeout=2))
        async with client.sessions.create(scope={"org": f"o{uuid.uuid4().hex[:6]}"}) as s:
            await s.remember("Competitor X's Pro tier costs $349/mo.")
            reflection = await s.reflect("competitor pricing", persist=True)
            calls = seen.path
        service = await client.service()
        await catch_up(service)
        before = await state_hash(service)
        seen.path = ""
        await rebuild(service)
        await catch_up(service)
        assert await state_hash(service) == before
        assert seen.path == "", "replay must not call the model"
    assert calls and reflection.reasoner == "llm:test-model@1" and reflection.persisted
