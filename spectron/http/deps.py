"""What the routes depend on, in one place: the service, the caller's key and session by capability,
the app's metrics, and the query and header parameters several routes share.

SpectronRoute has already authenticated the key of a /v1 request; these check what it may do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPBearer

from spectron.http import keys as keystore
from spectron.http.bodies import MAX_TIMEOUT
from spectron.http.metrics import Metrics
from spectron.http.routing import request_key
from spectron.http.sessions import OpenSession, SessionPolicy, find_session
from spectron.log.owed import READ_AFTER_HEADER
from spectron.service import MemoryService

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_...`.")
# every /v1 router's dependency: it declares the key in the OpenAPI document (SpectronRoute checks it)
AUTH = [Security(bearer)]

TimeoutQuery = Annotated[float | None, Query(ge=0, le=MAX_TIMEOUT)]
# read your writes across servers: the positions of a client's acknowledged writes, which its
# strong reads also wait for (spectron.log.owed); both clients send it by themselves
ReadAfter = Annotated[
    str | None,
    Header(
        alias=READ_AFTER_HEADER,
        description="Read-your-writes token: 'partition:offset,...' of the caller's acknowledged"
        " writes (as remember returned them); a strong read also waits for them.",
        max_length=20_000,
    ),
]


def service_of(request: Request) -> MemoryService:
    """The MemoryService this app serves."""
    service: MemoryService = request.app.state.service
    return service


def metrics_of(request: Request) -> Metrics:
    """The app's Prometheus metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


def session_policy(service: MemoryService) -> SessionPolicy:
    """The idle lifetime and per-key cap of HTTP sessions, from the service's settings."""
    return SessionPolicy(service.settings.session_idle_seconds, service.settings.sessions_per_key)


async def any_session(request: Request, session_id: str) -> OpenSession:
    """The caller's open session, whatever its capabilities."""
    service = service_of(request)
    async with service.pool.connection() as conn:
        return await find_session(conn, session_id, request_key(request), session_policy(service))


def session_with(capability: keystore.Capability) -> Callable[..., Awaitable[OpenSession]]:
    """A dependency: the caller's open session, once its key is known to have `capability`."""

    async def dependency(request: Request, session_id: str) -> OpenSession:
        session = await any_session(request, session_id)
        session.key.require(capability)
        return session

    return dependency


def key_with(capability: keystore.Capability) -> Callable[[Request], keystore.ApiKey]:
    """A dependency: the caller's key, once it is known to have `capability`."""

    def dependency(request: Request) -> keystore.ApiKey:
        key = request_key(request)
        key.require(capability)
        return key

    return dependency


Service = Annotated[MemoryService, Depends(service_of)]
AppMetrics = Annotated[Metrics, Depends(metrics_of)]
AnySession = Annotated[OpenSession, Depends(any_session)]
Reader = Annotated[OpenSession, Depends(session_with("read"))]
Writer = Annotated[OpenSession, Depends(session_with("write"))]
Forgetter = Annotated[OpenSession, Depends(session_with("forget"))]
# the key routes check `admin` after the body is validated (so a bad body is 422 for any key)
Caller = Annotated[keystore.ApiKey, Depends(request_key)]
ReadKey = Annotated[keystore.ApiKey, Depends(key_with("read"))]
AdminKey = Annotated[keystore.ApiKey, Depends(key_with("admin"))]
