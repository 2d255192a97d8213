"""The Python client: `SpectronClient().sessions.create(scope=...)` as the seed page writes it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from spectron.asof import AsOf
from spectron.calls import Call
from spectron.config import Settings
from spectron.embedding import Embedder
from spectron.errors import InvalidScope, SpectronError
from spectron.extraction import Extractor
from spectron.health import LogStatus
from spectron.reasoning import Reasoner
from spectron.rerank import Reranker
from spectron.scope import Scope
from spectron.scope_tree import ScopeTree
from spectron.service import MemoryService
from spectron.session import Session, Sessions
from spectron.verification import LogVerification

if TYPE_CHECKING:
    from spectron.http.client import HttpSpectronClient

R = TypeVar("R")


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
        self.sessions = Sessions(lambda principal: ServiceTransport(self, principal))
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


class ServiceTransport:
    """Carries a session's calls to the client's in-process MemoryService, started on first use."""

    session_id: str | None = None

    def __init__(self, client: SpectronClient, principal: str | None) -> None:
        self._client = client
        self.principal = principal or client.settings.principal
        self.capabilities: list[str] = []

    async def open(self, scope: Scope) -> None:
        """Start the service if it is not running yet."""
        await self._client.service()

    async def close(self) -> None:
        """Nothing to release: the service is the client's."""

    async def send(self, scope: Scope, call: Call[R]) -> R:
        """Run `call` on the service, for this session's principal."""
        return await call.run(await self._client.service(), scope, self.principal)


__all__ = ["ServiceTransport", "Session", "Sessions", "SpectronClient"]
