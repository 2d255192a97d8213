"""LLMExtractor and chat_json against a real local HTTP server replaying recorded chat completions."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from spectron.config import Settings
from spectron.errors import ExtractionFailed, LLMError, SpectronError
from spectron.extraction import make_extractor
from spectron.extraction.llm import FACTS_JSON_SCHEMA, LLMExtractor
from spectron.facts import AttributeSpec, EntityRef, EntityType, Facts
from spectron.llm import chat_json
from tests.recorded_llm import (
    RECORDED,
    SEED_FACTS,
    Server,
    completion,
    facts_json,
    recorded_server,
)

TIMEOUT = 0.5  # seconds; the slow scenarios take far longer than this


@pytest.fixture
def llm_server() -> Iterator[Server]:
    """The recorded-completion server replaying this module's scenarios."""
    with recorded_server(RECORDED, slow_body=completion(facts_json())) as server:
        yield server


def extractor(url: str, timeout: float = TIMEOUT) -> LLMExtractor:
    """An extractor against the test server."""
    return LLMExtractor(url, "test-model", api_key="sk-test", timeout=timeout)


# ---------------------------------------------------------------- the extractor


def test_good_answer_becomes_facts(llm_server: Server) -> None:
    url, recorder = llm_server
    registered = EntityType(
        name="Vendor",
        triggers=["vendor"],
        attributes=[AttributeSpec(key="contract_value", synonyms=["deal size"])],
    )
    content = "The enterprise customer segment prioritises SOC2 compliance over cost."
    facts = extractor(url("good")).extract(content, [registered])
    assert facts == Facts.model_validate(SEED_FACTS)
    assert recorder.path == "/good/v1/chat/completions"
    assert recorder.headers["Authorization"] == "Bearer sk-test"
    body = recorder.body
    assert body["model"] == "test-model"
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"] == FACTS_JSON_SCHEMA
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert content in user["content"]
    # the registered type (triggers, keys, cardinalities) and the built-in ones are described
    assert (
        '- Vendor: triggers "vendor"; attributes: contract_value (single, also "deal size")'
        in (system["content"])
    )
    assert "- CustomerSegment:" in system["content"]


def test_extractor_id_names_the_model() -> None:
    assert extractor("http://127.0.0.1:9/v1").extractor_id == "llm:test-model@1"


def test_fenced_and_empty_answers(llm_server: Server) -> None:
    url, _ = llm_server
    assert extractor(url("fenced")).extract("x", []) == Facts.model_validate(SEED_FACTS)
    assert extractor(url("empty-facts")).extract("nothing here", []).is_empty()


def test_entities_named_only_by_facts_are_listed(llm_server: Server) -> None:
    url, _ = llm_server
    facts = extractor(url("missing-entity")).extract("Competitor X's Pro tier costs $299/mo.", [])
    assert facts.entities == [EntityRef(type="Competitor", name="Competitor X")]


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("malformed", "not JSON"),
        ("not-object", "not an object"),
        ("schema-violating", "not valid Facts"),
        ("extra-field", "not valid Facts"),
        ("huge-lists", "not valid Facts"),
        ("nul-bytes", "not valid Facts"),
        ("injection", "not JSON"),
        ("refusal", "refused"),
        ("not-a-completion", "not a chat completion"),
        ("http-500", "HTTP 500"),
        ("http-401", "HTTP 401"),
        ("too-big", "larger than"),
    ],
)
def test_bad_answers_raise_extraction_failed(
    llm_server: Server, scenario: str, reason: str
) -> None:
    url, _ = llm_server
    with pytest.raises(ExtractionFailed, match=reason) as caught:
        extractor(url(scenario)).extract("Competitor X raised prices by 20%.", [])
    assert caught.value.type == "extraction-failed"
    assert caught.value.status == 502
    assert len(str(caught.value)) < 1000  # the reason is recorded in the log: keep it short


@pytest.mark.parametrize("scenario", ["slow", "drip"])
def test_slow_server_fails_within_the_timeout(llm_server: Server, scenario: str) -> None:
    url, _ = llm_server
    started = time.monotonic()
    with pytest.raises(ExtractionFailed, match=r"within 0\.5s"):
        extractor(url(scenario)).extract("Competitor X raised prices by 20%.", [])
    assert time.monotonic() - started < TIMEOUT + 0.5


def test_unreachable_server_fails() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ExtractionFailed, match="ConnectionRefused"):
        extractor(f"http://127.0.0.1:{port}/v1").extract("x", [])


def test_make_extractor_llm_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRON_LLM_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SPECTRON_LLM_MODEL", "qwen-test")
    monkeypatch.setenv("SPECTRON_LLM_KEY", "sk-env")
    made = make_extractor("llm", Settings.from_env())
    assert isinstance(made, LLMExtractor)
    assert made.extractor_id == "llm:qwen-test@1"
    assert made.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.delenv("SPECTRON_LLM_MODEL")
    with pytest.raises(ValueError, match="SPECTRON_LLM_MODEL"):
        make_extractor("llm", Settings.from_env())


# ---------------------------------------------------------------- chat_json itself

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def test_chat_json_returns_the_parsed_content(llm_server: Server) -> None:
    url, recorder = llm_server
    messages = [{"role": "user", "content": "hi"}]
    answer = chat_json(url("good"), "m1", None, messages, SCHEMA, 2.0, schema_name="reply")
    assert answer == SEED_FACTS
    assert "Authorization" not in recorder.headers
    assert recorder.body["messages"] == messages
    assert recorder.body["temperature"] == 0.0
    assert recorder.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": SCHEMA, "strict": True},
    }


def test_chat_json_http_error_has_status_and_excerpt(llm_server: Server) -> None:
    url, _ = llm_server
    with pytest.raises(LLMError, match=r"HTTP 500.*upstream exploded") as caught:
        chat_json(url("http-500"), "m", "k", [], SCHEMA, 2.0)
    assert isinstance(caught.value, SpectronError)
    assert caught.value.type == "llm-unavailable"
    assert caught.value.status == 502


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [("malformed", "not JSON"), ("injection", "not JSON"), ("not-a-completion", "completion")],
)
def test_chat_json_non_json_content(llm_server: Server, scenario: str, reason: str) -> None:
    url, _ = llm_server
    with pytest.raises(LLMError, match=reason):
        chat_json(url(scenario), "m", "k", [], SCHEMA, 2.0)


def test_chat_json_timeout(llm_server: Server) -> None:
    url, _ = llm_server
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"no complete answer within 0\.3s"):
        chat_json(url("slow"), "m", "k", [], SCHEMA, 0.3)
    assert time.monotonic() - started < 0.3 + 0.5


def test_chat_json_rejects_a_non_http_url() -> None:
    with pytest.raises(LLMError, match="not an http"):
        chat_json("file:///etc", "m", "k", [], SCHEMA, 1.0)
