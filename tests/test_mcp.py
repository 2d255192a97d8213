"""The MCP server through the official client: `spectron mcp` over stdio and /mcp in `spectron serve`.

Real processes on the module's database (hashing embedder); tests isolate themselves by org.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO, Any, get_args

import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from spectron.http import keys as keystore
from spectron.mcp.tools import Category
from spectron.service import MemoryService
from spectron.validation import MEMORY_CATEGORIES
from tests.http_support import fresh_org, log_size
from tests.mcp_support import (
    BOUND,
    ROOT,
    http_session,
    ok,
    spectron_env,
    stdio_session,
    text,
)
from tests.serve_support import serving

pytest_plugins = ["tests.http_support"]
EXTRACTOR = "patterns"  # the same extractor as the spawned servers: they share the enrichment
TOOLS = {
    "remember": {"content", "memory_category", "metadata", "facts", "scope"},
    "recall": {"query", "top_k", "memory_category", "metadata", "mode", "as_of", "scope"},
    "get_state": {"scope", "as_of"},
    "history": {"entity", "attribute", "scope"},
    "reflect": {"query", "persist", "scope"},
    "profile": {"scope", "as_of"},
    "forget": {"memory_id", "where", "scope"},
}
PRICE = {"entity": {"type": "Competitor", "name": "Competitor X"}, "key": "price"}
# the protocol's first message, as a raw client sends it
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}


@pytest.fixture(scope="module")
def env(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The spawned servers' environment."""
    home = tmp_path_factory.mktemp("home")
    return spectron_env(
        module_database, home, SPECTRON_EXTRACTOR=EXTRACTOR, SPECTRON_PRINCIPAL="agent:mcp-stdio"
    )


@pytest.fixture(scope="module")
def errlog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IO[str]]:
    """Where the stdio servers' stderr goes (shown when a test fails)."""
    path = tmp_path_factory.mktemp("logs") / "mcp-stderr.log"
    with path.open("w+") as handle:
        yield handle


@pytest.fixture(scope="module")
def server(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, service: MemoryService
) -> Iterator[str]:
    """`spectron serve` on the module's database."""
    with serving(env, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


async def new_key(
    service: MemoryService, floor: dict[str, str], caps: str, principal: str = "agent:mcp-http"
) -> str:
    """An API key's secret."""
    async with service.pool.connection() as conn:
        await keystore.migrate_keys(conn)
        _, secret = await keystore.create_key(conn, principal, floor, caps)
    return secret


def test_the_category_choices_are_spectrons() -> None:
    assert get_args(Category) == MEMORY_CATEGORIES


async def test_stdio_tools_and_remember_then_recall_in_another_session(env, errlog) -> None:
    base = {"org": fresh_org(), "project": "p1"}
    async with AsyncExitStack() as stack:
        # two client sessions, two server processes: started together, used one after the other
        writer, reader = [
            await stack.enter_async_context(stdio_session(env, base, errlog)) for _ in range(2)
        ]
        listed = (await writer.list_tools()).tools
        assert {tool.name: set(tool.input_schema["properties"]) for tool in listed} == TOOLS
        assert all(tool.description and len(tool.description) > 40 for tool in listed)
        assert next(t for t in listed if t.name == "forget").annotations.destructive_hint is True

        written = ok(
            await writer.call_tool(
                "remember",
                {
                    "content": "Competitor X launched a pro tier at $299/mo.",
                    "metadata": {"source": "mcp-test"},
                    "facts": [{**PRICE, "value": "$299/mo"}],
                },
            )
        )
        ok(
            await writer.call_tool(
                "remember",
                {
                    "content": "Competitor X raised the pro tier to $349/mo.",
                    "facts": [{**PRICE, "value": "$349/mo"}],
                },
            )
        )
        # the reader works in a worker's sub-scope: it sees the shared base scope's memory
        worker = {**base, "agent": "w1"}
        result = await reader.call_tool(
            "recall", {"query": "competitor pro tier price", "top_k": 5, "scope": worker}
        )
        found = ok(result)["items"]
        assert {item["content"] for item in found} == {
            "Competitor X raised the pro tier to $349/mo.",
            "Competitor X launched a pro tier at $299/mo.",
        }
        first = next(item for item in found if item["id"] == written["id"])
        assert first["principal"] == "agent:mcp-stdio" and first["metadata"] == {
            "source": "mcp-test"
        }
        assert "Competitor X launched a pro tier at $299/mo." in text(result)

        # the conflict is spelled out in text and kept in the structured state
        state = await reader.call_tool("get_state", {})
        assert "price: $299/mo (superseded by $349/mo)" in text(state)
        history = await reader.call_tool(
            "history", {"entity": "Competitor X", "attribute": "price"}
        )
        assert [e["value"] for e in ok(history)["entries"]] == ["$299/mo", "$349/mo"]
        assert "superseded by '$349/mo'" in text(history)
        # as_of: before the second write, the first price was current
        then = await reader.call_tool("get_state", {"as_of": written["recorded_at"]})
        assert "price: $299/mo" in text(then) and "$349" not in text(then)
        profile = ok(await reader.call_tool("profile", {}))
        assert sum(profile["counts_by_category"].values()) == 2
        reflection = await reader.call_tool("reflect", {"query": "Competitor X pricing"})
        assert not reflection.is_error and written["id"] in ok(reflection)["sources"]


DEEP: dict[str, Any] = {}
for _ in range(12):
    DEEP = {"a": DEEP}
REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("remember", {"content": ""}, "content must not be empty"),
    ("remember", {"content": "   "}, "content"),
    ("remember", {"content": "x", "memory_category": "gossip"}, "memory_category"),
    ("remember", {"content": "x", "metadata": DEEP}, "invalid-metadata"),
    ("remember", {"content": "x", "metadata": ["not", "an", "object"]}, "metadata"),
    ("remember", {"content": "x", "facts": [{"entity": "nope"}]}, "fact"),
    ("recall", {"query": "x", "top_k": 0}, "greater than or equal to 1"),
    ("recall", {"query": ""}, "query must not be empty"),
    ("recall", {"query": "x", "as_of": "last tuesday"}, "is not an ISO 8601 time"),
    ("get_state", {"as_of": "9:99999999"}, "as_of"),
    ("forget", {"memory_id": str(uuid.UUID(int=7))}, "memory-not-found"),
    ("forget", {"memory_id": "not-a-uuid"}, "is not a UUID"),
    ("forget", {}, "exactly one of memory_id or where"),
    ("forget", {"where": {"colour": "red"}}, "invalid forget filter"),
]


async def test_stdio_bad_input_is_a_tool_error_and_appends_nothing(
    env, errlog, service: MemoryService
) -> None:
    org = fresh_org()
    base = {"org": org, "project": "p1"}
    refusals = [
        *REFUSALS,
        ("remember", {"content": "x", "scope": {"org": org}}, "outside this server's base scope"),
        ("recall", {"query": "x", "scope": {"org": org, "project": "p2"}}, "outside this server's"),
        ("get_state", {"scope": {"org": fresh_org(), "project": "p1"}}, "outside"),
        ("remember", {"content": "x", "scope": {**base, "agent": ""}}, "invalid-scope"),
    ]
    async with stdio_session(env, base, errlog) as session:
        before = await log_size(service)
        for tool, arguments, message in refusals:
            result = await session.call_tool(tool, arguments)
            assert result.is_error, (tool, arguments, text(result))
            assert message in text(result), (tool, arguments, text(result))
        assert await log_size(service) == before
        # the server keeps serving
        ok(await session.call_tool("remember", {"content": "Still here after the refusals."}))
    assert await log_size(service) > before


def test_stdio_writes_nothing_but_the_protocol_to_stdout(env, tmp_path: Path) -> None:
    messages = [
        INITIALIZE,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "recall", "arguments": {"query": "anything"}},
        },
    ]
    scope = json.dumps({"org": fresh_org(), "project": "p1"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "spectron.cli", "mcp", "--scope", scope],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr.log").open("w"),
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    replies: list[dict[str, Any]] = []
    for message in messages:
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        if "id" in message:
            line = proc.stdout.readline()  # the reply (a notification would also be JSON-RPC)
            replies.append(json.loads(line))
    proc.stdin.close()
    rest = proc.stdout.read()
    assert proc.wait(BOUND) == 0, (tmp_path / "stderr.log").read_text()
    replies.extend(json.loads(line) for line in rest.splitlines() if line.strip())
    assert all(reply["jsonrpc"] == "2.0" for reply in replies)
    assert [reply.get("id") for reply in replies if "id" in reply] == [1, 2, 3]
    assert replies[2]["result"]["isError"] is False


async def test_http_needs_an_api_key(server: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        for auth in ({}, {"Authorization": "Bearer sk_unknown"}):
            response = await http.post("/mcp", json=body, headers={**headers, **auth})
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"].endswith("/unauthenticated")


async def test_http_a_session_belongs_to_the_key_that_opened_it(
    server: str, service: MemoryService
) -> None:
    floor = {"org": fresh_org(), "project": "p1"}
    owner = await new_key(service, floor, "read,write")
    other = await new_key(service, floor, "read,write")
    accept = {"Accept": "application/json, text/event-stream"}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        opened = await http.post(
            "/mcp", json=INITIALIZE, headers={**accept, "Authorization": f"Bearer {owner}"}
        )
        assert opened.status_code == 200, opened.text
        session = {**accept, "mcp-session-id": opened.headers["mcp-session-id"]}
        # another valid key naming the session: no such session, whatever it asks
        for method, body in (("POST", listing), ("GET", None), ("DELETE", None)):
            refused = await http.request(
                method, "/mcp", json=body, headers={**session, "Authorization": f"Bearer {other}"}
            )
            assert refused.status_code == 404, (method, refused.text)
            assert refused.json()["type"].endswith("/session-not-found")
        # the owner's session is untouched: it closes it
        closed = await http.delete("/mcp", headers={**session, "Authorization": f"Bearer {owner}"})
        assert closed.status_code == 200, closed.text


async def test_http_remember_then_recall_in_another_session_as_the_key(
    server: str, service: MemoryService
) -> None:
    floor = {"org": fresh_org(), "project": "p1"}
    secret = await new_key(service, floor, "read,write", principal="agent:mcp-http")
    async with http_session(server, secret) as writer:
        assert {tool.name for tool in (await writer.list_tools()).tools} == set(TOOLS)
        written = ok(await writer.call_tool("remember", {"content": "Acme renews in March."}))
        ok(
            await writer.call_tool(
                "remember",
                {
                    "content": "Worker w1 drafted the renewal memo.",
                    "scope": {**floor, "agent": "w1"},
                },
            )
        )
        outside = await writer.call_tool(
            "recall", {"query": "renewal", "scope": {"org": floor["org"]}}
        )
        assert outside.is_error and "outside" in text(outside)
    async with http_session(server, secret) as reader:
        found = ok(await reader.call_tool("recall", {"query": "When does Acme renew?"}))["items"]
        mine = next(item for item in found if item["id"] == written["id"])
        # the server stamps the key's principal; the key's floor is the base scope
        assert mine["principal"] == "agent:mcp-http" and mine["scope"] == floor
        assert "Worker w1 drafted the renewal memo." in {item["content"] for item in found}


async def test_http_capabilities_decide_the_tools(server: str, service: MemoryService) -> None:
    floor = {"org": fresh_org(), "project": "p1"}
    writer = await new_key(service, floor, "read,write")
    reader = await new_key(service, floor, "read")
    forgetter = await new_key(service, floor, "read,write,forget")
    async with http_session(server, writer) as session:
        written = ok(await session.call_tool("remember", {"content": "The launch slipped to May."}))
        refused = await session.call_tool("forget", {"memory_id": written["id"]})
        assert refused.is_error and "lacks the 'forget' capability" in text(refused)
    before = await log_size(service)
    async with http_session(server, reader) as session:
        for tool, arguments in [
            ("remember", {"content": "A reader may not write."}),
            ("reflect", {"query": "launch", "persist": True}),
            ("forget", {"memory_id": written["id"]}),
        ]:
            result = await session.call_tool(tool, arguments)
            assert result.is_error and "lacks the" in text(result), (tool, text(result))
        assert ok(await session.call_tool("recall", {"query": "launch date"}))["items"]
    assert await log_size(service) == before
    async with http_session(server, forgetter) as session:
        gone = ok(await session.call_tool("forget", {"memory_id": written["id"]}))
        assert gone["forgotten"] == [written["id"]]
        left = ok(await session.call_tool("recall", {"query": "launch slipped May"}))["items"]
        assert written["id"] not in {item["id"] for item in left}


async def test_http_key_without_floor_must_name_a_scope(
    server: str, service: MemoryService
) -> None:
    secret = await new_key(service, {}, "read,write")
    scope = {"org": fresh_org(), "project": "p1"}
    async with http_session(server, secret) as session:
        refused = await session.call_tool("remember", {"content": "Where does this go?"})
        assert refused.is_error and "must name its scope" in text(refused)
        ok(await session.call_tool("remember", {"content": "Here.", "scope": scope}))


async def test_stdio_against_a_remote_server_is_governed_by_its_key(
    env, errlog, server: str, service: MemoryService
) -> None:
    floor = {"org": fresh_org(), "project": "p1"}
    writer = await new_key(service, floor, "read,write", principal="agent:remote")
    reader = await new_key(service, floor, "read", principal="agent:remote-reader")
    async with AsyncExitStack() as stack:
        as_writer, as_reader, above = [
            await stack.enter_async_context(
                stdio_session(env, scope, errlog, "--base-url", server, "--api-key", secret)
            )
            for scope, secret in [(floor, writer), (floor, reader), ({"org": floor["org"]}, writer)]
        ]
        written = ok(await as_writer.call_tool("remember", {"content": "Remote memory of Acme."}))
        found = ok(await as_reader.call_tool("recall", {"query": "Acme remote memory"}))["items"]
        assert [item["principal"] for item in found if item["id"] == written["id"]] == [
            "agent:remote"
        ]
        refused = await as_reader.call_tool("remember", {"content": "Readers cannot write."})
        assert refused.is_error and "lacks the 'write' capability" in text(refused)
        outside = await above.call_tool("recall", {"query": "Acme"})
        assert outside.is_error and "may only open scopes containing" in text(outside)


async def test_the_readme_config_snippet_starts_a_working_server(env, errlog) -> None:
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("## MCP", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    config = json.loads(snippet)["mcpServers"]["spectron"]
    assert Path(config["command"]).name == "spectron"
    params = StdioServerParameters(
        command=str(Path(sys.executable).parent / "spectron"), args=config["args"], env=env
    )
    worker = {"agent": f"readme-{uuid.uuid4().hex[:8]}"}
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write, read_timeout_seconds=BOUND) as session,
    ):
        await session.initialize()
        assert {tool.name for tool in (await session.list_tools()).tools} == set(TOOLS)
        base = json.loads(config["args"][config["args"].index("--scope") + 1])
        written = ok(
            await session.call_tool(
                "remember", {"content": "Configured from the README.", "scope": {**base, **worker}}
            )
        )
        found = ok(
            await session.call_tool("recall", {"query": "README", "scope": {**base, **worker}})
        )
        assert written["id"] in {item["id"] for item in found["items"]}
