"""The MCP streamable-HTTP transport inside `spectron serve`, at /mcp, behind the API keys.

Every HTTP request to /mcp is authenticated like a /v1 request (`Authorization: Bearer sk_...`,
401 problem+json otherwise); the key rides on the request into the tool call, which then acts for
that key alone: its principal on writes, its floor as the base scope, its capabilities per tool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from spectron.errors import SessionNotFound, SpectronError, Unauthenticated
from spectron.http.keys import ApiKey, authenticate
from spectron.http.routing import bearer_secret, problem_response

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from spectron.mcp.access import Access

log = logging.getLogger(__name__)
MCP_PATH = "/mcp"
_KEY_STATE = "spectron_api_key"
SESSION_HEADER = "mcp-session-id"  # the streamable-HTTP transport's session header


def mount_mcp(app: FastAPI) -> bool:
    """Serve MCP at /mcp on `app` (needs the `mcp` extra); False when it is not installed."""
    try:
        from mcp.server.transport_security import TransportSecuritySettings

        from spectron.mcp.tools import build_server
    except ImportError:
        log.info("MCP is not mounted at %s: install spectron[mcp]", MCP_PATH)
        return False

    def access_of(ctx: Context) -> Access:
        from spectron.mcp.access import KeyAccess

        request = ctx.request_context.request
        key = getattr(getattr(request, "state", None), _KEY_STATE, None)
        if not isinstance(key, ApiKey):
            raise Unauthenticated("an API key is required")
        return KeyAccess(app.state.service, key)

    server = build_server(access_of)
    # API keys authenticate every request, so a page a browser was tricked into loading (what
    # DNS-rebinding protection guards against) has no key to send: the Host check would only
    # refuse legitimate proxies and hostnames
    server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    manager = server.session_manager
    app.router.routes.append(
        Route(MCP_PATH, endpoint=_Endpoint(app, manager), methods=["GET", "POST", "DELETE"])
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state, _running(manager):
            yield state

    app.router.lifespan_context = lifespan
    return True


@asynccontextmanager
async def _running(manager: StreamableHTTPSessionManager) -> AsyncIterator[None]:
    """Run the session manager in a task of its own for the app's lifetime.

    Its anyio task group must be entered and left by one task; a lifespan may be entered and
    left by different ones (pytest-asyncio fixtures do), so the manager gets its own.
    """
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def run() -> None:
        async with manager.run():
            ready.set()
            await stop.wait()

    task = asyncio.create_task(run(), name="spectron-mcp-sessions")
    started = asyncio.create_task(ready.wait())
    await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()  # it failed to start: raise why
    try:
        yield
    finally:
        stop.set()
        await task


class _Endpoint:
    """ASGI: authenticate the API key, then hand the request to the MCP session manager.

    An MCP session belongs to the key that opened it: another key naming its id (to call tools
    in it, read its stream or close it) is told there is no such session.
    """

    def __init__(self, app: FastAPI, manager: StreamableHTTPSessionManager) -> None:
        self.app = app
        self.manager = manager
        self.owners: dict[str, Any] = {}  # MCP session id → key_id of the key that opened it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request of the streamable-HTTP transport."""
        request = Request(scope, receive)
        try:
            async with self.app.state.service.pool.connection() as conn:
                key = await authenticate(conn, bearer_secret(request))
            session_id = request.headers.get(SESSION_HEADER)
            owner = self.owners.get(session_id) if session_id is not None else None
            if owner is not None and owner != key.key_id:
                raise SessionNotFound("no MCP session with that id for this API key")
        except SpectronError as exc:
            await problem_response(exc, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})[_KEY_STATE] = key
        await self.manager.handle_request(
            scope, receive, self._noting_owner(send, key, session_id, request.method)
        )

    def _noting_owner(self, send: Send, key: ApiKey, session_id: str | None, method: str) -> Send:
        """`send`, recording who opened a session and forgetting one that is closed."""

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                if session_id is None:
                    for name, value in message.get("headers", []):
                        if name.decode().lower() == SESSION_HEADER:
                            self.owners[value.decode()] = key.key_id
                elif method == "DELETE" and 200 <= message["status"] < 300:
                    self.owners.pop(session_id, None)
            await send(message)

        return sending
