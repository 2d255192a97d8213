"""The Python client: `SpectronClient().sessions.create(scope=...)` as the seed page writes it."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from spectron.asof import AsOf
from spectron.config import Settings
from spectron.embedding import Embedder
from spectron.errors import InvalidScope, SessionClosed, SpectronError
from spectron.extraction import Extractor
from spectron.facts import EntityType, Facts
from spectron.forgetting import ForgetFilter, ForgetResult
from spectron.health import LogStatus
from spectron.history import AuditPage, HistoryEntry
from spectron.memories import MemoryPage, MemoryRecord
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.reasoning import Reasoner
from spectron.recall import RecallMode
from spectron.rerank import Reranker
from spectron.scope import Scope, canonical_scope, is_within
from spectron.scope_tree import ScopeTree
from spectron.service import Consistency, MemoryService
from spectron.verification import LogVerification

if TYPE_CHECKING:
    from spectron.http.client import HttpSessions, HttpSpectronClient


class SpectronClient:
    """Entry point. With no arguments it runs embedded: Postgres and the log start on first use.

    `SpectronClient(kafka="host:9092", database="postgresql://...")` appends to Kafka and reads
    projections that `spectron worker` processes maintain. `SpectronClient(base_url=..., api_key=...)`
    (or SPECTRON_BASE_URL with neither database nor kafka given) talks to `spectron serve` over HTTP.
    """

    def __init__(
        self,
        *,
        database: str | None = None,
        kafka: str | None = None,
        home: str | Path | None = None,
        principal: str | None = None,
        embedder: Embedder | str | None = None,
        extractor: Extractor | str | None = None,
        reasoner: Reasoner | None = None,
        reranker: Reranker | None = None,
        partitions: int | None = None,
        read_timeout: float | None = None,
        run_projectors: bool | None = None,
        settings: Settings | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        base = settings or Settings.from_env()
        overrides: dict[str, Any] = {
            "database_url": database,
            "kafka_bootstrap": kafka,
            "home": Path(home) if home is not None else None,
            "principal": principal,
            "partitions": partitions,
            "read_timeout": read_timeout,
            "run_projectors": run_projectors,
            "embedder": embedder if isinstance(embedder, str) else None,
            "extractor": extractor if isinstance(extractor, str) else None,
        }
        self.settings = dataclasses.replace(
            base, **{k: v for k, v in overrides.items() if v is not None}
        )
        self._embedder = embedder if not isinstance(embedder, str) else None
        self._extractor = extractor if not isinstance(extractor, str) else None
        self._reasoner = reasoner
        self._reranker = reranker
        self._service: MemoryService | None = None
        self._starting: asyncio.Lock | None = None
        self.sessions: Sessions | HttpSessions = Sessions(self)
        self._http: HttpSpectronClient | None = None
        url = base_url
        if url is None and database is None and kafka is None:
            url = self.settings.base_url
        if url:
            from spectron.http.client import HttpSpectronClient

            self._http = HttpSpectronClient(url, api_key or self.settings.api_key)
            self.sessions = self._http.sessions

    async def service(self) -> MemoryService:
        """The running service, started on first use."""
        if self._http is not None:
            raise SpectronError("this client talks to a server over HTTP; it has no local service")
        if self._service is None:
            if self._starting is None:
                self._starting = asyncio.Lock()
            async with self._starting:
                if self._service is None:
                    self._service = await MemoryService.open(
                        self.settings,
                        self._embedder,
                        self._extractor,
                        self._reasoner,
                        self._reranker,
                    )
        return self._service

    async def scopes(self, root: Scope | None = None, *, as_of: AsOf = None) -> ScopeTree:
        """Scopes holding memories visible from `root` (default: all; over HTTP: the key's floor)."""
        if self._http is not None:
            if root is not None:
                raise InvalidScope("over HTTP the scope tree starts at the API key's floor")
            return await self._http.scopes(as_of=as_of)
        return await (await self.service()).scope_tree(root or {}, as_of=as_of)

    async def status(self) -> LogStatus:
        """Per partition log end, projected position and lag; pending embeddings; dead letters."""
        if self._http is not None:
            return await self._http.status()
        return await (await self.service()).log_status()

    async def verify_log(self) -> LogVerification:
        """Check the log's hash chain end to end (reads the whole log)."""
        if self._http is not None:
            return await self._http.verify_log()
        return await (await self.service()).verify_log()

    async def close(self) -> None:
        """Stop background work and release the database (the embedded server stops when unused)."""
        if self._http is not None:
            await self._http.close()
        if self._service is not None:
            service, self._service = self._service, None
            await service.close()

    async def __aenter__(self) -> SpectronClient:
        if self._http is None:
            await self.service()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Sessions:
    """`client.sessions`: opens sessions at a scope."""

    def __init__(self, client: SpectronClient) -> None:
        self._client = client

    def create(self, scope: Scope, principal: str | None = None) -> Session:
        """A session at `scope`; use it as `async with` (or `await` it) and close it when done."""
        return Session(self._client, canonical_scope(scope), principal)


class Session:
    """Memory operations at one scope. An async context manager; also awaitable."""

    def __init__(self, client: SpectronClient, scope: Scope, principal: str | None) -> None:
        self._client = client
        self.scope = scope
        self.principal = principal or client.settings.principal
        self._closed = False

    async def _open(self) -> Session:
        await self._client.service()
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
        self._closed = True

    async def _service(self) -> MemoryService:
        if self._closed:
            raise SessionClosed(f"session at {self.scope} is closed")
        return await self._client.service()

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
        service = await self._service()
        return await service.remember(
            self.scope, self.principal, content, memory_category, metadata, facts
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
        target = self.scope if scope is None else canonical_scope(scope)
        if not is_within(target, self.scope):
            raise InvalidScope(f"a session at {self.scope} cannot read state at {target}")
        service = await self._service()
        return await service.get_state(
            target, consistency=consistency, timeout=timeout, as_of=as_of
        )

    async def reflect(self, query: str, persist: bool = False, top_k: int = 10) -> Reflection:
        """Synthesise what this scope can see about `query`; persist=True records it as memory."""
        service = await self._service()
        return await service.reflect(self.scope, self.principal, query, persist, top_k)

    async def profile(
        self,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> Profile:
        """This scope's entity state, persisted reflections, contributions and recent memory."""
        service = await self._service()
        return await service.profile(
            self.scope, consistency=consistency, timeout=timeout, as_of=as_of
        )

    async def history(
        self, entity: str, attribute: str | None = None, *, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value an entity's attribute(s) had at or below this scope, oldest first."""
        service = await self._service()
        return await service.history(self.scope, entity, attribute, as_of)

    async def forget(
        self,
        memory_id: uuid.UUID | str | None = None,
        *,
        scope: Scope | None = None,
        where: ForgetFilter | dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ForgetResult:
        """Erase one memory, or every memory at or below `scope` (default: this session's) matching `where`."""
        service = await self._service()
        return await service.forget(
            self.scope, self.principal, memory_id, target=scope, where=where, reason=reason
        )

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
        service = await self._service()
        return await service.list_memories(
            self.scope,
            limit=limit,
            cursor=cursor,
            memory_category=memory_category,
            metadata=metadata,
            consistency=consistency,
            timeout=timeout,
            as_of=as_of,
        )

    async def memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryRecord:
        """One memory visible from this scope; MemoryNotFound if there is none (or it was forgotten)."""
        service = await self._service()
        return await service.get_memory(
            self.scope, memory_id, consistency=consistency, timeout=timeout, as_of=as_of
        )

    async def audit(
        self,
        *,
        limit: int = 200,
        principal: str | None = None,
        since: AsOf = None,
        until: AsOf = None,
    ) -> AuditPage:
        """The newest events visible from this scope: who did what, when, ids and log positions."""
        service = await self._service()
        return await service.audit(
            self.scope, limit=limit, principal=principal, since=since, until=until
        )

    async def register_entity_type(self, entity_type: EntityType | dict[str, Any]) -> None:
        """Register an entity type for extraction at and below this session's scope."""
        service = await self._service()
        await service.register_entity_type(self.scope, self.principal, entity_type)

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
        service = await self._service()
        return await service.recall(
            self.scope,
            query,
            top_k,
            memory_category=memory_category,
            metadata=metadata,
            consistency=consistency,
            timeout=timeout,
            mode=mode,
            as_of=as_of,
            explain=explain,
        )
