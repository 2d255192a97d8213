"""Bad input over HTTP: each case gets its documented problem+json, and the log stays unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from spectron.validation import MAX_CONTENT_CHARS
from tests.http_support import fresh_org, log_size

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@dataclass
class Case:
    """One bad request: where it goes, what it sends, and the problem it must get."""

    name: str
    path: str  # "{s}" is the session's path
    status: int
    slug: str
    body: Any = None  # JSON-encoded unless `raw` is given
    raw: bytes | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


REMEMBER = "{s}/remember"
RECALL = "{s}/recall"
REFLECT = "{s}/reflect"
BIG = b'{"content": "' + b"x" * (300 * 1024) + b'"}'
CASES = [
    # not JSON at all
    Case("truncated JSON", REMEMBER, 400, "malformed-json", raw=b'{"content": "x"'),
    Case("trailing garbage", REMEMBER, 400, "malformed-json", raw=b'{"content": "x"} x'),
    Case("invalid UTF-8", REMEMBER, 400, "malformed-json", raw=b'{"content": "caf\xe9"}'),
    Case("lone surrogate", REMEMBER, 400, "malformed-json", raw=b'{"content": "\\ud800"}'),
    Case(
        "NaN literal",
        REMEMBER,
        400,
        "malformed-json",
        raw=b'{"content": "x", "metadata": {"n": NaN}}',
    ),
    Case(
        "nesting bomb",
        REMEMBER,
        400,
        "malformed-json",
        raw=b'{"metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ),
    Case(
        "not JSON media type",
        REMEMBER,
        415,
        "unsupported-media-type",
        raw=b"content=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    # too large, declared or streamed
    Case("huge body", REMEMBER, 413, "payload-too-large", raw=BIG),
    Case("huge chunked body", REMEMBER, 413, "payload-too-large", raw=BIG, chunked=True),
    # wrong shapes and types
    Case("empty body", REMEMBER, 422, "invalid-request", raw=b""),
    Case("array body", REMEMBER, 422, "invalid-request", body=[{"content": "x"}]),
    Case("string body", REMEMBER, 422, "invalid-request", body="remember this"),
    Case(
        "missing content", REMEMBER, 422, "invalid-request", body={"memory_category": "knowledge"}
    ),
    Case("unknown field", REMEMBER, 422, "invalid-request", body={"content": "x", "colour": "red"}),
    Case(
        "forged principal",
        REMEMBER,
        422,
        "invalid-request",
        body={"content": "x", "principal": "agent:boss"},
    ),
    Case("non-string content", REMEMBER, 422, "invalid-content", body={"content": 42}),
    Case("empty content", REMEMBER, 422, "invalid-content", body={"content": ""}),
    Case("blank content", REMEMBER, 422, "invalid-content", body={"content": " \n\t"}),
    Case("NUL in content", REMEMBER, 422, "invalid-content", body={"content": "a\x00b"}),
    Case(
        "oversized content",
        REMEMBER,
        422,
        "invalid-content",
        body={"content": "x" * (MAX_CONTENT_CHARS + 1)},
    ),
    Case(
        "unknown category",
        REMEMBER,
        422,
        "invalid-category",
        body={"content": "x", "memory_category": "gossip"},
    ),
    Case(
        "list metadata", REMEMBER, 422, "invalid-metadata", body={"content": "x", "metadata": ["a"]}
    ),
    Case(
        "deep metadata",
        REMEMBER,
        422,
        "invalid-metadata",
        body={"content": "x", "metadata": deep(20)},
    ),
    Case(
        "huge metadata",
        REMEMBER,
        422,
        "invalid-metadata",
        body={"content": "x", "metadata": {"x": "y" * 20_000}},
    ),
    Case(
        "bad facts",
        REMEMBER,
        422,
        "invalid-request",
        body={"content": "x", "facts": {"entities": [{"type": "lower"}]}},
    ),
    # recall parameters
    Case("top_k zero", RECALL, 422, "invalid-request", body={"query": "x", "top_k": 0}),
    Case("top_k too large", RECALL, 422, "invalid-request", body={"query": "x", "top_k": 101}),
    Case("top_k negative", RECALL, 422, "invalid-request", body={"query": "x", "top_k": -5}),
    Case("top_k as string", RECALL, 422, "invalid-request", body={"query": "x", "top_k": "5"}),
    Case("top_k as bool", RECALL, 422, "invalid-request", body={"query": "x", "top_k": True}),
    Case("top_k as float", RECALL, 422, "invalid-request", body={"query": "x", "top_k": 2.5}),
    Case("empty query", RECALL, 422, "invalid-request", body={"query": ""}),
    Case("query not text", RECALL, 422, "invalid-request", body={"query": ["x"]}),
    Case(
        "unknown consistency",
        RECALL,
        422,
        "invalid-request",
        body={"query": "x", "consistency": "psychic"},
    ),
    Case("unknown mode", RECALL, 422, "invalid-request", body={"query": "x", "mode": "fuzzy"}),
    Case("negative timeout", RECALL, 422, "invalid-request", body={"query": "x", "timeout": -1}),
    Case("huge timeout", RECALL, 422, "invalid-request", body={"query": "x", "timeout": 1e9}),
    # as_of is an ISO time or "partition:offset" string: a number is refused
    Case("negative as_of", RECALL, 422, "invalid-request", body={"query": "x", "as_of": -1}),
    Case(
        "huge as_of",
        RECALL,
        422,
        "invalid-request",
        raw=b'{"query": "x", "as_of": 1' + b"0" * 40 + b"}",
    ),
    Case("as_of query parameter", "{s}/state?as_of=-1", 422, "invalid-input", method="GET"),
    # reflect, state, entity types
    Case(
        "persist as string", REFLECT, 422, "invalid-request", body={"query": "x", "persist": "yes"}
    ),
    Case("state scope not JSON", "{s}/state?scope=org%3Dacme", 422, "invalid-scope", method="GET"),
    Case(
        "state scope above session",
        '{s}/state?scope={"org":"ORG"}',
        422,
        "invalid-scope",
        method="GET",
    ),
    Case(
        "state timeout out of range", "{s}/state?timeout=99", 422, "invalid-request", method="GET"
    ),
    Case(
        "entity type lowercase", "{s}/entity-types", 422, "invalid-request", body={"name": "vendor"}
    ),
    # scopes of new sessions
    Case("scope not an object", "/v1/sessions", 422, "invalid-scope", body={"scope": "acme"}),
    Case("empty scope", "/v1/sessions", 422, "invalid-scope", body={"scope": {}}),
    Case(
        "non-string scope value", "/v1/sessions", 422, "invalid-scope", body={"scope": {"org": 1}}
    ),
    Case("bad scope key", "/v1/sessions", 422, "invalid-scope", body={"scope": {"or g": "acme"}}),
    Case(
        "too many dimensions",
        "/v1/sessions",
        422,
        "invalid-scope",
        body={"scope": {f"k{i}": "v" for i in range(9)}},
    ),
    Case("missing scope", "/v1/sessions", 422, "invalid-request", body={}),
    # addressing
    Case(
        "unknown session",
        "/v1/sessions/00000000-0000-0000-0000-000000000000/remember",
        404,
        "session-not-found",
        body={"content": "x"},
    ),
    Case(
        "session id not a uuid",
        "/v1/sessions/nope/remember",
        404,
        "session-not-found",
        body={"content": "x"},
    ),
    # reads with filters: a NUL cannot reach Postgres, a huge integer is not rounded into a float
    Case("NUL in an item key", "{s}/items?key=%00", 422, "invalid-input", method="GET"),
    Case("NUL in a versions key", "{s}/items/versions?key=%00", 422, "invalid-input", method="GET"),
    Case(
        "NUL in an audit principal", "{s}/audit?principal=%00", 422, "invalid-input", method="GET"
    ),
    Case(
        "huge integer in a metadata filter",
        '{s}/memories?metadata={"a":18446744073709551616}',
        422,
        "invalid-metadata",
        method="GET",
    ),
    Case("unknown route", "/v1/nothing", 404, "not-found", body={}),
    Case("wrong method", REMEMBER, 405, "method-not-allowed", method="GET"),
]


@pytest.fixture(scope="module")
async def session_path(raw, make_key) -> AsyncIterator[tuple[str, str, Any]]:
    """A writer's session at {org, project}; its path, its org, and the client."""
    org = fresh_org()
    client = raw(await make_key("read,write", {"org": org}))
    opened = await client.post("/v1/sessions", json={"scope": {"org": org, "project": "p"}})
    yield f"/v1/sessions/{opened.json()['session_id']}", org, client


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_bad_request_gets_its_problem_and_appends_nothing(
    service, session_path, case: Case
) -> None:
    path, org, client = session_path
    url = case.path.replace("{s}", path).replace("ORG", org)
    content = case.raw if case.raw is not None else orjson.dumps(case.body)
    if case.method == "GET":
        content = None
    elif case.chunked:
        payload = content

        async def stream() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 16_384):
                yield payload[start : start + 16_384]

        content = stream()  # type: ignore[assignment]
    headers = {"content-type": "application/json", **case.headers}
    before = await log_size(service)
    response = await client.request(case.method, url, content=content, headers=headers)
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == f"https://spectron.dev/problems/{case.slug}"
    assert problem["status"] == case.status
    assert problem["title"] and problem["detail"]
    assert problem["instance"] == url.split("?")[0]
    assert await log_size(service) == before


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.name for case in CASES}) == len(CASES)


async def test_valid_requests_still_append(service, session_path) -> None:
    path, _, client = session_path
    before = await log_size(service)
    response = await client.post(f"{path}/remember", json={"content": "A valid memory."})
    assert response.status_code == 201
    assert await log_size(service) > before
