"""Helpers for the MCP tests: `spectron mcp` as a real process, official clients over stdio and HTTP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

ROOT = Path(__file__).resolve().parents[1]
BOUND = 120.0  # generous: CI may be slow and busy


def spectron_env(database: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a spectron process on `database`, with nothing inherited from SPECTRON_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRON_")}
    env.update(
        SPECTRON_DATABASE_URL=database,
        SPECTRON_EMBEDDER="hashing",
        SPECTRON_HOME=str(home),
        SPECTRON_READ_TIMEOUT="10",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **extra,
    )
    return env


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], scope: dict[str, str], errlog: IO[str], *options: str
) -> AsyncIterator[ClientSession]:
    """An initialised MCP ClientSession with `spectron mcp --scope SCOPE [options]` as a subprocess."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "spectron.cli", "mcp", "--scope", json.dumps(scope), *options],
        env=env,
    )
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write, read_timeout_seconds=BOUND) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str, secret: str) -> AsyncIterator[ClientSession]:
    """An initialised MCP ClientSession over streamable HTTP at `url`/mcp with an API key."""
    headers = {"Authorization": f"Bearer {secret}"}
    timeout = httpx2.Timeout(BOUND, read=BOUND)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as streams,
        ClientSession(streams[0], streams[1], read_timeout_seconds=BOUND) as session,
    ):
        await session.initialize()
        yield session


def text(result: CallToolResult) -> str:
    """The text content of a tool result."""
    return "\n".join(getattr(block, "text", "") for block in result.content)


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful tool result (fails the test on a tool error)."""
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content
