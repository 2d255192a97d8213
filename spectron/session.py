"""A session: memory operations at one scope, the same in-process and over HTTP.

`Session` holds the signatures, defaults and scope checks once; a `SessionTransport` carries each
operation (spectron.calls) to where memory lives: a MemoryService in this process
(spectron.client.ServiceTransport), a server over HTTP (spectron.http.client.HttpTransport), or a
server's service acting for an API key (spectron.mcp.access.KeyTransport).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from spectron.asof import AsOf
from spectron.calls import (
    Call,
    Forget,
    GetAudit,
    GetHistory,
    GetMemory,
    GetProfile,
    GetState,
    ListMemories,
    Reads,
    Recall,
    Reflect,
    RegisterEntityType,
    Remember,
)
from spectron.errors import SessionClosed
from spectron.facts import EntityType, Facts
from spectron.forgetting import ForgetFilter, ForgetResult
from spectron.history import AuditPage, HistoryEntry
from spectron.memories import MemoryPage, MemoryRecord
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.recall import RecallMode
from spectron.scope import Scope, canonical_scope
from spectron.service import Consistency

R = TypeVar("R")


class SessionTransport(Protocol):
    """Carries a session's calls; knows who the session acts for once it is open."""

    @property
    def principal(self) -> str | None:
        """Who the session's writes are stamped with, once known."""
        ...

    @property
    def session_id(self) -> str | None:
        """The server's id of the session, if there is a server."""
        ...

    @property
    def capabilities(self) -> list[str]:
        """What the server allows the session, if there is a server."""
        ...

    async def open(self, scope: Scope) -> None:
        """Make the session ready at `scope` (idempotent)."""
        ...

    async def close(self) -> None:
        """Release what `open` took (called once)."""
        ...

    async def send(self, scope: Scope, call: Call[R]) -> R:
        """Do `call` at `scope` (opening first as needed); its result, or a SpectronError."""
        ...


class Session:
    """Memory operations at one scope. An async context manager; also awaitable."""

    def __init__(self, transport: SessionTransport, scope: Scope) -> None:
        self._transport = transport
        self.scope = scope
        self._closed = False

    @property
    def principal(self) -> str | None:
        """Who the session's writes are stamped with (over HTTP: the API key's, once open)."""
        return self._transport.principal

    @property
    def session_id(self) -> str | None:
        """The server's id of this session (None in-process, or before it is opened)."""
        return self._transport.session_id

    @property
    def capabilities(self) -> list[str]:
        """What the server allows this session (over HTTP, once open)."""
        return self._transport.capabilities

    async def _open(self) -> Session:
        await self._transport.open(self.scope)
        return self

    def __await__(self) -> Generator[Any, None, Session]:
        return self._open().__await__()

    async def __aenter__(self) -> Session:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session; its memories stay."""
        if self._closed:
            return
        self._closed = True
        await self._transport.close()

    async def _send(self, call: Call[R]) -> R:
        if self._closed:
            raise SessionClosed(f"session at {self.scope} is closed")
        return await self._transport.send(self.scope, call)

    async def remember(
        self,
        content: str,
        memory_category: str = "knowledge",
        metadata: dict[str, Any] | None = None,
        facts: Facts | list[Any] | dict[str, Any] | None = None,
    ) -> RememberResult:
        """Append a memory at this session's scope; returns once the log has it.

        `facts` (entities, attributes, relations) replace automatic extraction for this memory.
        """
        return await self._send(Remember(content, memory_category, metadata, facts))

    async def recall(
        self,
        query: str,
        top_k: int = 5,
        *,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        mode: RecallMode = "hybrid",
        as_of: AsOf = None,
        explain: bool = False,
    ) -> RecallResult:
        """Memories visible from this scope that best match `query` (read-your-writes by default).

        With `explain=True` every item says which legs found it and at what rank.
        """
        reads = Reads(consistency, timeout, as_of)
        return await self._send(
            Recall(query, top_k, memory_category, metadata, mode, explain, reads)
        )

    async def get_state(
        self,
        scope: Scope | None = None,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> State:
        """Entities, attributes (with supersession chains) and relations visible from a scope.

        `scope` defaults to the session's; it may be the session's scope or one below it, never
        above (which would show sibling scopes' memory).
        """
        target = None if scope is None else canonical_scope(scope)
        return await self._send(GetState(target, Reads(consistency, timeout, as_of)))

    async def reflect(self, query: str, persist: bool = False, top_k: int = 10) -> Reflection:
        """Synthesise what this scope can see about `query`; persist=True records it as memory."""
        return await self._send(Reflect(query, persist, top_k))

    async def profile(
        self,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> Profile:
        """This scope's entity state, persisted reflections, contributions and recent memory."""
        return await self._send(GetProfile(Reads(consistency, timeout, as_of)))

    async def history(
        self, entity: str, attribute: str | None = None, *, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value an entity's attribute(s) had at or below this scope, oldest first."""
        return await self._send(GetHistory(entity, attribute, as_of))

    async def forget(
        self,
        memory_id: uuid.UUID | str | None = None,
        *,
        scope: Scope | None = None,
        where: ForgetFilter | dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ForgetResult:
        """Erase one memory, or every memory at or below `scope` (default: this session's) matching `where`."""
        return await self._send(Forget(memory_id, scope, where, reason))

    async def memories(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryPage:
        """Memories visible from this scope, newest first; pass `next_cursor` on for older ones."""
        reads = Reads(consistency, timeout, as_of)
        return await self._send(ListMemories(limit, cursor, memory_category, metadata, reads))

    async def memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryRecord:
        """One memory visible from this scope; MemoryNotFound if there is none (or it was forgotten)."""
        return await self._send(GetMemory(memory_id, Reads(consistency, timeout, as_of)))

    async def audit(
        self,
        *,
        limit: int = 200,
        principal: str | None = None,
        since: AsOf = None,
        until: AsOf = None,
    ) -> AuditPage:
        """The newest events visible from this scope: who did what, when, ids and log positions."""
        return await self._send(GetAudit(limit, principal, since, until))

    async def register_entity_type(self, entity_type: EntityType | dict[str, Any]) -> None:
        """Register an entity type for extraction at and below this session's scope."""
        await self._send(RegisterEntityType(entity_type))


class Sessions:
    """`client.sessions`: opens sessions at a scope, each on a transport of its own."""

    def __init__(self, transport: Callable[[str | None], SessionTransport]) -> None:
        self._transport = transport

    def create(self, scope: Scope, principal: str | None = None) -> Session:
        """A session at `scope`; use it as `async with` (or `await` it) and close it when done."""
        transport = self._transport(principal)
        return Session(transport, canonical_scope(scope))
