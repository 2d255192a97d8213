"""Who an MCP caller is and where it may go: a base scope, and sessions opened at or below it.

Two kinds of access. Over stdio, `ClientAccess` wraps a SpectronClient (in-process, or a remote
server whose API key then decides); mounted in `spectron serve`, `KeyAccess` acts for the API key
that authenticated the HTTP request: its principal is stamped on writes, its scope floor is the
base scope and its capabilities gate every tool.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from spectron.asof import AsOf
from spectron.client import SpectronClient
from spectron.errors import InvalidScope
from spectron.forgetting import ForgetResult
from spectron.history import HistoryEntry
from spectron.http.keys import ApiKey
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.recall import RecallMode
from spectron.scope import Scope, canonical_scope, is_within
from spectron.service import MemoryService


class MemorySession(Protocol):
    """The session operations the MCP tools call (SpectronClient sessions already have them)."""

    scope: Scope

    async def remember(
        self,
        content: str,
        memory_category: str = "knowledge",
        metadata: dict[str, Any] | None = None,
        facts: Any = None,
    ) -> RememberResult:
        """Append a memory at the session's scope."""
        ...

    async def recall(
        self,
        query: str,
        top_k: int = 5,
        *,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: RecallMode = "hybrid",
        as_of: AsOf = None,
    ) -> RecallResult:
        """Memories visible from the session's scope that best match `query`."""
        ...

    async def get_state(self, scope: Scope | None = None, *, as_of: AsOf = None) -> State:
        """Entities, attributes and relations visible from the session's scope."""
        ...

    async def history(
        self, entity: str, attribute: str | None = None, *, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value an entity's attribute(s) had at or below the scope."""
        ...

    async def reflect(self, query: str, persist: bool = False) -> Reflection:
        """Synthesise what the scope can see about `query`."""
        ...

    async def profile(self, *, as_of: AsOf = None) -> Profile:
        """The scope at a glance."""
        ...

    async def forget(
        self, memory_id: uuid.UUID | str | None = None, *, where: Any = None
    ) -> ForgetResult:
        """Erase one memory, or the session scope's memories matching `where`."""
        ...


class Access(Protocol):
    """Where a caller may go, and a session there."""

    @property
    def base_scope(self) -> Scope | None:
        """The scope tools use by default; None when the caller must always name one."""
        ...

    def session(self, scope: Scope) -> AbstractAsyncContextManager[MemorySession]:
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
    async def session(self, scope: Scope) -> AsyncIterator[MemorySession]:
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
    async def session(self, scope: Scope) -> AsyncIterator[MemorySession]:
        """A session at `scope`, which must contain the key's floor."""
        self.key.require_scope(scope)
        yield KeySession(self.service, self.key, scope)


class KeySession:
    """MemorySession over a MemoryService for an API key: its principal, its capabilities."""

    def __init__(self, service: MemoryService, key: ApiKey, scope: Scope) -> None:
        self.service = service
        self.key = key
        self.scope = scope

    async def remember(
        self,
        content: str,
        memory_category: str = "knowledge",
        metadata: dict[str, Any] | None = None,
        facts: Any = None,
    ) -> RememberResult:
        """Append a memory (needs `write`)."""
        self.key.require("write")
        return await self.service.remember(
            self.scope, self.key.principal, content, memory_category, metadata, facts
        )

    async def recall(
        self,
        query: str,
        top_k: int = 5,
        *,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: RecallMode = "hybrid",
        as_of: AsOf = None,
    ) -> RecallResult:
        """Recall (needs `read`)."""
        self.key.require("read")
        return await self.service.recall(
            self.scope,
            query,
            top_k,
            memory_category=memory_category,
            metadata=metadata,
            mode=mode,
            as_of=as_of,
        )

    async def get_state(self, scope: Scope | None = None, *, as_of: AsOf = None) -> State:
        """Entity state (needs `read`)."""
        self.key.require("read")
        return await self.service.get_state(self.scope if scope is None else scope, as_of=as_of)

    async def history(
        self, entity: str, attribute: str | None = None, *, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Attribute history (needs `read`)."""
        self.key.require("read")
        return await self.service.history(self.scope, entity, attribute, as_of)

    async def reflect(self, query: str, persist: bool = False) -> Reflection:
        """Reflect (needs `read`; persist also needs `write`)."""
        self.key.require("read")
        if persist:
            self.key.require("write")
        return await self.service.reflect(self.scope, self.key.principal, query, persist)

    async def profile(self, *, as_of: AsOf = None) -> Profile:
        """Profile (needs `read`)."""
        self.key.require("read")
        return await self.service.profile(self.scope, as_of=as_of)

    async def forget(
        self, memory_id: uuid.UUID | str | None = None, *, where: Any = None
    ) -> ForgetResult:
        """Forget (needs `forget`)."""
        self.key.require("forget")
        return await self.service.forget(self.scope, self.key.principal, memory_id, where=where)
