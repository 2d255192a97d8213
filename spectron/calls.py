"""A session's operations as values: each says how it runs on a MemoryService and what it is on
the wire, so every transport of `spectron.session.Session` shares one list, and the server's routes
run the same calls on its service.

A call holds arguments as the caller gave them; the service validates them. The wire form only
encodes: JSON cannot carry NaN or sets, so metadata is checked before it is sent.
"""

from __future__ import annotations

import functools
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypedDict, TypeVar, cast

import orjson
from pydantic import TypeAdapter, ValidationError

from spectron.asof import AsOf
from spectron.errors import InvalidInput, InvalidScope, MemoryNotFound, ServerUnavailable
from spectron.events import LogPosition
from spectron.facts import EntityType, Facts, check_facts
from spectron.forgetting import ForgetFilter, ForgetResult
from spectron.history import AuditPage, HistoryEntry
from spectron.memories import MemoryPage, MemoryRecord
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.recall import RecallMode
from spectron.scope import Scope, canonical_scope, is_within
from spectron.validation import check_metadata

if TYPE_CHECKING:
    from spectron.service import Consistency, MemoryService

R = TypeVar("R")


@dataclass(frozen=True)
class Wire:
    """A call as an HTTP request on the session's URL (/v1/sessions/{id}/<path>)."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    wait: float | None = None  # the server may wait this long for read-your-writes
    strong: bool = False  # a strong read: also wait for this client's own acknowledged writes
    written: bool = False  # the answer is a write's position, owed to this client's later reads


class Call(ABC, Generic[R]):
    """One session operation; `answer` is the type of its result."""

    answer: ClassVar[Any]

    @abstractmethod
    async def run(self, service: MemoryService, scope: Scope, principal: str) -> R:
        """Do it on `service` (this process's), at the session's `scope`, for `principal`."""

    @abstractmethod
    def wire(self) -> Wire:
        """The request that does it over HTTP."""

    def parse(self, data: Any) -> R:
        """The result from the server's JSON answer."""
        try:
            return cast(R, _adapter(self.answer).validate_python(data))
        except ValidationError as exc:
            name = getattr(self.answer, "__name__", str(self.answer))
            raise ServerUnavailable(f"the server answered an unexpected {name}") from exc


@dataclass(frozen=True)
class Remember(Call[RememberResult]):
    """Append a memory."""

    answer = RememberResult
    content: str
    memory_category: str
    metadata: dict[str, Any] | None
    facts: Facts | list[Any] | dict[str, Any] | None

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> RememberResult:
        """See Session.remember."""
        return await service.remember(
            scope, principal, self.content, self.memory_category, self.metadata, self.facts
        )

    def wire(self) -> Wire:
        """POST remember."""
        body: dict[str, Any] = {
            "content": self.content,
            "memory_category": self.memory_category,
            "metadata": _metadata(self.metadata),
        }
        if self.facts is not None:
            body["facts"] = _facts_json(self.facts)
        return Wire("POST", "remember", body, written=True)


class ReadOptions(TypedDict):
    """How a read waits and what moment it reads, as MemoryService's read methods take them."""

    consistency: Consistency
    timeout: float | None
    as_of: AsOf


@dataclass(frozen=True)
class Reads:
    """How a read waits for the log, and which moment it reads."""

    consistency: Consistency
    timeout: float | None
    as_of: AsOf
    # a read-your-writes token of writes to wait for ('partition:offset,...'); over HTTP the
    # transport sends its client's own as a header, so the wire form leaves this out
    after: str | None = None

    def options(self) -> ReadOptions:
        """The service's keyword arguments for the read (all but `after`)."""
        return {"consistency": self.consistency, "timeout": self.timeout, "as_of": self.as_of}

    def get(self, path: str, params: dict[str, str] | None = None, *, strong: bool = True) -> Wire:
        """GET `path` with the read's query parameters, then `params`; a strong read sends the
        client's read-your-writes token unless `strong` is False."""
        strong = strong and self.consistency == "strong"
        query = {**self.params(), **(params or {})}
        return Wire("GET", path, params=query, wait=self.timeout, strong=strong)

    def params(self) -> dict[str, str]:
        """The read's query parameters."""
        timeout = repr(float(self.timeout)) if self.timeout is not None else None
        return _query(consistency=self.consistency, timeout=timeout, as_of=as_of_text(self.as_of))


@dataclass(frozen=True)
class Recall(Call[RecallResult]):
    """Memories that best match a query."""

    answer = RecallResult
    query: str
    top_k: int
    memory_category: str | None
    metadata: dict[str, Any] | None
    mode: RecallMode
    explain: bool
    reads: Reads

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> RecallResult:
        """See Session.recall."""
        return await service.recall(
            scope,
            self.query,
            self.top_k,
            memory_category=self.memory_category,
            metadata=self.metadata,
            mode=self.mode,
            explain=self.explain,
            after=self.reads.after,
            **self.reads.options(),
        )

    def wire(self) -> Wire:
        """POST recall."""
        reads = self.reads
        body = {
            "query": self.query,
            "top_k": self.top_k,
            "memory_category": self.memory_category,
            "metadata": _metadata(self.metadata),
            "consistency": reads.consistency,
            "timeout": reads.timeout,
            "mode": self.mode,
            "as_of": as_of_text(reads.as_of),
            "explain": self.explain,
        }
        return Wire(
            "POST", "recall", body, wait=reads.timeout, strong=reads.consistency == "strong"
        )


@dataclass(frozen=True)
class GetState(Call[State]):
    """Entities, attributes and relations visible from the session's scope, or `scope` below it
    (over HTTP the server checks that it is below)."""

    answer = State
    scope: Scope | None
    reads: Reads

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> State:
        """See Session.get_state."""
        target = self.scope or scope
        if not is_within(target, scope):  # above it would show sibling scopes' memory
            raise InvalidScope(f"a session at {scope} cannot read state at {target}")
        return await service.get_state(target, after=self.reads.after, **self.reads.options())

    def wire(self) -> Wire:
        """GET state."""
        target = None if self.scope is None else orjson.dumps(self.scope).decode()
        return self.reads.get("state", _query(scope=target))


@dataclass(frozen=True)
class Reflect(Call[Reflection]):
    """Synthesise what the scope can see."""

    answer = Reflection
    query: str
    persist: bool
    top_k: int

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> Reflection:
        """See Session.reflect."""
        return await service.reflect(scope, principal, self.query, self.persist, self.top_k)

    def wire(self) -> Wire:
        """POST reflect."""
        body = {"query": self.query, "persist": self.persist, "top_k": self.top_k}
        return Wire("POST", "reflect", body)


@dataclass(frozen=True)
class GetProfile(Call[Profile]):
    """The scope at a glance."""

    answer = Profile
    reads: Reads

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> Profile:
        """See Session.profile."""
        return await service.profile(scope, after=self.reads.after, **self.reads.options())

    def wire(self) -> Wire:
        """GET profile."""
        return self.reads.get("profile")


@dataclass(frozen=True)
class GetHistory(Call[list[HistoryEntry]]):
    """Every value an entity's attribute(s) had."""

    answer = list[HistoryEntry]
    entity: str
    attribute: str | None
    as_of: AsOf

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> list[HistoryEntry]:
        """See Session.history."""
        return await service.history(scope, self.entity, self.attribute, self.as_of)

    def wire(self) -> Wire:
        """GET history."""
        as_of = as_of_text(self.as_of)
        params = _query(entity=self.entity, attribute=self.attribute, as_of=as_of)
        return Wire("GET", "history", params=params)


@dataclass(frozen=True)
class Forget(Call[ForgetResult]):
    """Erase one memory, or the memories at or below a scope matching a filter."""

    answer = ForgetResult
    memory_id: uuid.UUID | str | None
    scope: Scope | None
    where: ForgetFilter | dict[str, Any] | None
    reason: str | None

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> ForgetResult:
        """See Session.forget."""
        return await service.forget(
            scope,
            principal,
            self.memory_id,
            target=self.scope,
            where=self.where,
            reason=self.reason,
        )

    def wire(self) -> Wire:
        """POST forget."""
        where = self.where
        if isinstance(where, ForgetFilter):
            where = where.model_dump(mode="json", exclude_none=True)
        body = {
            "memory_id": str(self.memory_id) if self.memory_id is not None else None,
            "scope": canonical_scope(self.scope) if self.scope is not None else None,
            "where": where,
            "reason": self.reason,
        }
        return Wire("POST", "forget", body)


@dataclass(frozen=True)
class ListMemories(Call[MemoryPage]):
    """A page of the memories visible from the scope, newest first."""

    answer = MemoryPage
    limit: int
    cursor: str | None
    memory_category: str | None
    metadata: dict[str, Any] | None
    reads: Reads

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> MemoryPage:
        """See Session.memories."""
        return await service.list_memories(
            scope,
            limit=self.limit,
            cursor=self.cursor,
            memory_category=self.memory_category,
            metadata=self.metadata,
            **self.reads.options(),
        )

    def wire(self) -> Wire:
        """GET memories."""
        metadata = _metadata(self.metadata)
        page = _query(
            limit=str(self.limit),
            cursor=self.cursor,
            memory_category=self.memory_category,
            metadata=orjson.dumps(metadata).decode() if metadata is not None else None,
        )
        # the server's memory routes take no read-your-writes token
        return self.reads.get("memories", page, strong=False)


@dataclass(frozen=True)
class GetMemory(Call[MemoryRecord]):
    """One memory visible from the scope."""

    answer = MemoryRecord
    memory_id: uuid.UUID | str
    reads: Reads

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> MemoryRecord:
        """See Session.memory."""
        return await service.get_memory(scope, self.memory_id, **self.reads.options())

    def wire(self) -> Wire:
        """GET memories/{id}."""
        try:
            parsed = uuid.UUID(str(self.memory_id))
        except ValueError:
            raise MemoryNotFound(f"no memory {self.memory_id!r}: not a memory id") from None
        return self.reads.get(f"memories/{parsed}", strong=False)


@dataclass(frozen=True)
class GetAudit(Call[AuditPage]):
    """The newest events visible from the scope."""

    answer = AuditPage
    limit: int
    principal: str | None
    since: AsOf
    until: AsOf

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> AuditPage:
        """See Session.audit."""
        return await service.audit(
            scope, limit=self.limit, principal=self.principal, since=self.since, until=self.until
        )

    def wire(self) -> Wire:
        """GET audit."""
        params = _query(
            limit=str(self.limit),
            principal=self.principal,
            since=as_of_text(self.since),
            until=as_of_text(self.until),
        )
        return Wire("GET", "audit", params=params)


@dataclass(frozen=True)
class RegisterEntityType(Call[RememberResult]):
    """Register an entity type for extraction at and below the scope."""

    answer = RememberResult
    entity_type: EntityType | dict[str, Any]

    async def run(self, service: MemoryService, scope: Scope, principal: str) -> RememberResult:
        """See Session.register_entity_type."""
        return await service.register_entity_type(scope, principal, self.entity_type)

    def wire(self) -> Wire:
        """POST entity-types."""
        entity_type = self.entity_type
        if isinstance(entity_type, EntityType):
            entity_type = entity_type.model_dump(mode="json")
        return Wire("POST", "entity-types", entity_type)


def as_of_text(as_of: AsOf) -> str | None:
    """as_of on the wire: 'partition:offset' for a position, ISO 8601 for a time."""
    if as_of is None or isinstance(as_of, str):
        return as_of
    if isinstance(as_of, LogPosition):
        return f"{as_of.partition}:{as_of.offset}"
    if isinstance(as_of, datetime):
        return as_of.isoformat()
    raise InvalidInput("as_of must be a datetime, an ISO 8601 string or a LogPosition")


@functools.cache
def _adapter(answer: Any) -> TypeAdapter[Any]:
    """The validator of a result type, built once (building it is the slow part)."""
    return TypeAdapter(answer)


def _query(**values: str | None) -> dict[str, str]:
    """Query parameters: those given, in order; None means leave it out."""
    return {name: value for name, value in values.items() if value is not None}


def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    # checked here too: JSON would silently turn NaN into null and cannot carry sets
    return check_metadata(metadata) if metadata is not None else None


def _facts_json(facts: Facts | list[Any] | dict[str, Any]) -> Any:
    """Facts as JSON; lists (the in-process shorthand) are sorted into a Facts first."""
    checked = check_facts(facts)
    return checked.model_dump(mode="json") if checked is not None else None
