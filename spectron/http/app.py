"""The FastAPI app: the routers (spectron.http.routes), API-key auth, problem+json errors, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from spectron.config import Settings
from spectron.http import keys as keystore
from spectron.http.console_ui import ui_router
from spectron.http.error_handlers import add_error_handlers
from spectron.http.metrics import Metrics, RequestTimer
from spectron.http.openapi_schema import PROBLEMS, openapi_schema
from spectron.http.routes import console, items, keys, memory, operations, sessions
from spectron.http.routing import BodyLimit, SpectronRoute
from spectron.mcp import mount_mcp
from spectron.service import MemoryService


def _version() -> str:
    try:
        return version("spectron")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def create_app(service: MemoryService | None = None, settings: Settings | None = None) -> FastAPI:
    """The HTTP API on `service`, or on a MemoryService opened (and closed) by the app's lifespan."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None
        running = service or await MemoryService.open(settings or Settings.from_env())
        try:
            async with running.pool.connection() as conn:
                await keystore.migrate_keys(conn)
            app.state.service = running
            yield
        finally:
            if owned:
                await running.close()

    app = FastAPI(
        title="Spectron",
        version=_version(),
        summary="Shared long-term memory for teams of LLM agents, on an event-sourced log.",
        lifespan=lifespan,
        responses=PROBLEMS,
        # operation ids are the handler names (remember, recall, ...): stable names for clients
        generate_unique_id_function=lambda route: route.name,
    )
    app.router.route_class = SpectronRoute
    app.state.metrics = metrics
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestTimer, metrics=metrics)
    add_error_handlers(app)
    for routes in (operations, sessions, memory, keys):
        app.include_router(routes.router)
    mount_mcp(app)  # /mcp, when the `mcp` extra is installed
    for routes in (items, console):
        app.include_router(routes.router)
    app.include_router(ui_router)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app
