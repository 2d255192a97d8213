"""`spectron mcp`: the MCP server over stdio for one client process (Claude Desktop, Cursor, ...)."""

from __future__ import annotations

from spectron.client import SpectronClient
from spectron.mcp.access import ClientAccess
from spectron.mcp.tools import build_server
from spectron.scope import Scope


async def serve_stdio(client: SpectronClient, scope: Scope) -> None:
    """Serve MCP on stdin/stdout at base `scope` until the client hangs up; then close `client`."""
    access = ClientAccess(client, scope)
    server = build_server(lambda ctx: access)
    try:
        # the SDK claims fd 1 for the protocol and points stray writes (ours, Postgres') at stderr
        await server.run_stdio_async()
    finally:
        await client.close()
