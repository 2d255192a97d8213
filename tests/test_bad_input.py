"""Bad input raises a typed error and appends nothing."""

from __future__ import annotations

import pytest

from spectron import (
    InvalidCategory,
    InvalidContent,
    InvalidInput,
    InvalidMetadata,
    InvalidScope,
    SessionClosed,
)
from spectron.validation import MAX_CONTENT_CHARS

SHARED = {"org": "acme", "project": "p"}


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


REMEMBER_CASES = [
    ("empty content", {"content": ""}, InvalidContent),
    ("blank content", {"content": "   \n"}, InvalidContent),
    ("non-string content", {"content": 42}, InvalidContent),
    ("oversized content", {"content": "x" * (MAX_CONTENT_CHARS + 1)}, InvalidContent),
    ("NUL in content", {"content": "a\x00b"}, InvalidContent),
    ("unknown category", {"content": "ok", "memory_category": "gossip"}, InvalidCategory),
    ("non-dict metadata", {"content": "ok", "metadata": ["a"]}, InvalidMetadata),
    ("non-JSON metadata", {"content": "ok", "metadata": {"when": object()}}, InvalidMetadata),
    ("set in metadata", {"content": "ok", "metadata": {"tags": {1, 2}}}, InvalidMetadata),
    ("NaN in metadata", {"content": "ok", "metadata": {"x": float("nan")}}, InvalidMetadata),
    ("non-string metadata key", {"content": "ok", "metadata": {1: "a"}}, InvalidMetadata),
    ("deep metadata", {"content": "ok", "metadata": deep(20)}, InvalidMetadata),
    ("huge metadata", {"content": "ok", "metadata": {"x": "y" * 20_000}}, InvalidMetadata),
]

SCOPE_CASES = [
    ("non-dict scope", "acme"),
    ("list scope", [("org", "acme")]),
    ("empty scope", {}),
    ("int value", {"org": 1}),
    ("None value", {"org": None}),
    ("empty value", {"org": ""}),
    ("bad key", {"or g": "acme"}),
    ("too many dimensions", {f"k{i}": "v" for i in range(9)}),
]


async def log_size(client) -> int:
    service = await client.service()
    return sum((await service.log.end_offsets()).values())


@pytest.mark.parametrize(
    ("case", "kwargs", "error"), REMEMBER_CASES, ids=[c[0] for c in REMEMBER_CASES]
)
async def test_bad_remember_appends_nothing(make_client, case, kwargs, error) -> None:
    client = make_client()
    before = await log_size(client)
    async with client.sessions.create(scope=SHARED) as session:
        with pytest.raises(error):
            await session.remember(**kwargs)
    assert issubclass(error, InvalidInput)
    assert await log_size(client) == before


@pytest.mark.parametrize(("case", "scope"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES])
async def test_bad_scope_is_rejected(make_client, case, scope) -> None:
    client = make_client()
    before = await log_size(client)
    with pytest.raises(InvalidScope):
        client.sessions.create(scope=scope)
    assert await log_size(client) == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query": ""},
        {"query": 7},
        {"query": "ok", "top_k": 0},
        {"query": "ok", "top_k": 1000},
        {"query": "ok", "top_k": True},
        {"query": "ok", "memory_category": "gossip"},
        {"query": "ok", "consistency": "sometimes"},
    ],
)
async def test_bad_recall_is_rejected(make_client, kwargs) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as session:
        with pytest.raises(InvalidInput):
            await session.recall(**kwargs)


async def test_closed_session_refuses(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as session:
        pass
    with pytest.raises(SessionClosed):
        await session.remember("too late")
