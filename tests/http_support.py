"""Fixtures shared by the HTTP tests (no tests here): a service, the app on it, keys, ASGI clients;
and the helpers they share (fresh_org, log_size, assert_problem).

They are module-scoped (one database and one MemoryService per test module) to keep the HTTP tests
fast; tests isolate themselves with a fresh `org` value each.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from spectron import SpectronClient
from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.http.app import create_app
from spectron.http.client import HttpSpectronClient
from spectron.http.keys import create_key
from spectron.maintenance import catch_up
from spectron.service import MemoryService
from tests.conftest import SETTLE_TIMEOUT, create_database

BASE = "http://spectron.test"
PROBLEM = "application/problem+json"
MakeKey = Callable[..., Awaitable[str]]


def fresh_org() -> str:
    """An org value no other test uses."""
    return f"org-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def module_database(pg_server: str) -> str:
    """A fresh database for one test module."""
    return create_database(pg_server, "h")


@pytest.fixture(scope="module")
async def service(
    module_database: str, request: pytest.FixtureRequest
) -> AsyncIterator[MemoryService]:
    """A MemoryService on the module's database (embedded log, in-process projectors).

    Extraction is off unless the module sets EXTRACTOR: its derived events land in the log later,
    which would blur the "log unchanged" checks. A module's SETTINGS dict overrides other settings.
    """
    extractor = getattr(request.module, "EXTRACTOR", "none")
    extra = getattr(request.module, "SETTINGS", {})  # a module's own settings, e.g. small limits
    settings = Settings(
        database_url=module_database, extractor=extractor, read_timeout=SETTLE_TIMEOUT, **extra
    )
    svc = await MemoryService.open(settings, embedder=HashingEmbedder())
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture(scope="module")
async def app(service: MemoryService) -> AsyncIterator[FastAPI]:
    """The HTTP app on `service`, its lifespan entered (keys schema migrated)."""
    application = create_app(service)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
async def http_client(
    app: FastAPI, make_key: MakeKey
) -> AsyncIterator[Callable[..., Awaitable[HttpSpectronClient]]]:
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

    yield make
    for client in made:
        await client.close()


async def log_size(service: MemoryService) -> int:
    """How many records the log holds, once enrichment has appended what earlier writes imply."""
    await catch_up(service, 10.0)
    return sum((await service.log.end_offsets()).values())


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is the documented problem+json; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"https://spectron.dev/problems/{slug}"
    assert body["status"] == status
    assert {"title", "detail", "instance"} <= set(body)
    return body


@pytest.fixture(params=["in-process", "http"])
async def client(
    request: pytest.FixtureRequest,
    module_database: str,
    http_client: Callable[..., Awaitable[HttpSpectronClient]],
) -> AsyncIterator[Any]:
    """A client of either transport on the module's database (the module's EXTRACTOR, as `service`)."""
    if request.param == "http":
        yield await http_client()
        return
    extractor = getattr(request.module, "EXTRACTOR", "none")
    local = SpectronClient(
        database=module_database, embedder=HashingEmbedder(), extractor=extractor
    )
    try:
        yield local
    finally:
        await local.close()
