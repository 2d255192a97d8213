"""Who an MCP caller is and where it may go: a base scope, and sessions opened at or below it.

Two kinds of access. Over stdio, `ClientAccess` wraps a SpectronClient (in-process, or a remote
server whose API key then decides); mounted in `spectron serve`, `KeyAccess` acts for the API key
that authenticated the HTTP request: its principal is stamped on writes, its scope floor is the
base scope and its capabilities gate every tool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from spectron.calls import Call, Forget, Reflect, RegisterEntityType, Remember
from spectron.client import SpectronClient
from spectron.errors import InvalidScope
from spectron.http.keys import ApiKey, Capability
from spectron.scope import Scope, canonical_scope, is_within
from spectron.service import MemoryService
from spectron.session import Session

R = TypeVar("R")


class Access(Protocol):
    """Where a caller may go, and a session there."""

    @property
    def base_scope(self) -> Scope | None:
        """The scope tools use by default; None when the caller must always name one."""
        ...

    def session(self, scope: Scope) -> AbstractAsyncContextManager[Session]:
        """An open session at `scope` (already checked to be at or below the base)."""
        ...


def resolve_scope(access: Access, scope: Any) -> Scope:
    """The tool's scope: the base by default; a given one must be at or below the base."""
    base = access.base_scope
    if scope is None:
        if base is None:
            raise InvalidScope(
                "this API key has no scope floor, so every call must name its scope"
                ' (e.g. {"org": "acme", "project": "p1"})'
            )
        return base
    chosen = canonical_scope(scope)
    if base is not None and not is_within(chosen, base):
        raise InvalidScope(
            f"scope {chosen} is outside this server's base scope {base}: only the base scope or a"
            ' sub-scope of it (the base plus more dimensions, e.g. {..., "agent": "w1"}) is allowed'
        )
    return chosen


class ClientAccess:
    """Sessions of a SpectronClient below a fixed base scope (`spectron mcp --scope ...`)."""

    def __init__(self, client: SpectronClient, base_scope: Scope) -> None:
        self.client = client
        self._base = canonical_scope(base_scope)

    @property
    def base_scope(self) -> Scope:
        """The --scope the server was started with."""
        return self._base

    @asynccontextmanager
    async def session(self, scope: Scope) -> AsyncIterator[Session]:
        """A client session at `scope`, closed afterwards."""
        async with self.client.sessions.create(scope=scope) as session:
            yield session


class KeyAccess:
    """Sessions acting for one API key on the server's own MemoryService."""

    def __init__(self, service: MemoryService, key: ApiKey) -> None:
        self.service = service
        self.key = key

    @property
    def base_scope(self) -> Scope | None:
        """The key's scope floor (None for an unrestricted key: `{}`)."""
        return dict(self.key.scope_floor) or None

    @asynccontextmanager
    async def session(self, scope: Scope) -> AsyncIterator[Session]:
        """A session at `scope`, which must contain the key's floor."""
        self.key.require_scope(scope)
        yield Session(KeyTransport(self.service, self.key), scope)


class KeyTransport:
    """Carries a session's calls to a MemoryService for an API key: its principal, its capabilities."""

    session_id: str | None = None

    def __init__(self, service: MemoryService, key: ApiKey) -> None:
        self.service = service
        self.key = key
        self.principal = key.principal
        self.capabilities: list[str] = sorted(key.capabilities)

    async def open(self, scope: Scope) -> None:
        """Nothing to open: the service runs in this process."""

    async def close(self) -> None:
        """Nothing to release."""

    async def send(self, scope: Scope, call: Call[R]) -> R:
        """Run `call` once the key has the capabilities it needs."""
        for capability in needs(call):
            self.key.require(capability)
        return await call.run(self.service, scope, self.key.principal)


def needs(call: Call[Any]) -> list[Capability]:
    """The capabilities a call needs, in the order they are checked (as the HTTP routes do)."""
    if isinstance(call, Remember | RegisterEntityType):
        return ["write"]
    if isinstance(call, Forget):
        return ["forget"]
    if isinstance(call, Reflect) and call.persist:
        return ["read", "write"]
    return ["read"]
