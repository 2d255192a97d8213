"""Fixtures shared by the HTTP tests (no tests here): a service, the app on it, keys, ASGI clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.http.app import create_app
from spectron.http.client import HttpSpectronClient
from spectron.http.keys import create_key
from spectron.service import MemoryService

BASE = "http://spectron.test"
MakeKey = Callable[..., Awaitable[str]]


@pytest.fixture
async def service(database: str, hashing: HashingEmbedder) -> AsyncIterator[MemoryService]:
    """A MemoryService on the test database (embedded log, in-process projectors)."""
    svc = await MemoryService.open(Settings(database_url=database), embedder=hashing)
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
async def app(service: MemoryService) -> AsyncIterator[FastAPI]:
    """The HTTP app on `service`, its lifespan entered (keys schema migrated)."""
    application = create_app(service)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def make_key(service: MemoryService, app: FastAPI) -> MakeKey:
    """Create an API key directly in the database; returns its secret."""

    async def make(
        capabilities: str = "read,write",
        floor: dict[str, str] | None = None,
        principal: str = "agent:test",
    ) -> str:
        async with service.pool.connection() as conn:
            _, secret = await create_key(conn, principal, floor or {}, capabilities)
        return secret

    return make


@pytest.fixture
async def raw(app: FastAPI) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """Factory of raw httpx clients on the app (in-process ASGI), optionally with a key."""
    made: list[httpx.AsyncClient] = []

    def make(secret: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers
        )
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def http_client(
    app: FastAPI, make_key: MakeKey
) -> AsyncIterator[Callable[..., HttpSpectronClient]]:
    """Factory of HttpSpectronClients on the app (ASGI transport); default key: read,write, no floor."""
    made: list[HttpSpectronClient] = []
    default: list[str] = []

    async def make(secret: str | None = None, **_: Any) -> HttpSpectronClient:
        if secret is None:
            if not default:
                default.append(await make_key("read,write,forget"))
            secret = default[0]
        client = HttpSpectronClient(BASE, secret, transport=httpx.ASGITransport(app=app))
        made.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in made:
        await client.close()


async def log_size(service: MemoryService) -> int:
    """How many records the log holds across partitions."""
    return sum((await service.log.end_offsets()).values())
