"""Sessions: open one at a scope containing the key's floor, look at it, close it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from spectron.http.bodies import SessionCreate, SessionInfo
from spectron.http.deps import AUTH, AnySession, Service, session_policy
from spectron.http.problems import PROBLEM_MEDIA_TYPE
from spectron.http.routing import SpectronRoute, request_key
from spectron.http.sessions import OpenSession, close_session, open_session
from spectron.scope import canonical_scope

router = APIRouter(route_class=SpectronRoute, tags=["sessions"], dependencies=AUTH)
TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "The key holds as many open sessions as it may.",
        "content": {PROBLEM_MEDIA_TYPE: {}},
    }
}


@router.post("/v1/sessions", status_code=201, responses=TOO_MANY)
async def create_session(body: SessionCreate, request: Request, service: Service) -> SessionInfo:
    """Open a session at a scope containing the key's scope floor."""
    key = request_key(request)
    scope = canonical_scope(body.scope)
    key.require_scope(scope)
    async with service.pool.connection() as conn:
        session = await open_session(conn, key, scope, session_policy(service))
    return _info(session)


@router.get("/v1/sessions/{session_id}")
async def get_session(session: AnySession) -> SessionInfo:
    """The session's scope, principal and capabilities."""
    return _info(session)


@router.delete("/v1/sessions/{session_id}", status_code=204)
async def delete_session(session: AnySession, service: Service) -> Response:
    """Close the session; its memories stay."""
    async with service.pool.connection() as conn:
        await close_session(conn, session)
    return Response(status_code=204)


def _info(session: OpenSession) -> SessionInfo:
    return SessionInfo(
        session_id=session.session_id,
        scope=session.scope,
        principal=session.key.principal,
        capabilities=sorted(session.key.capabilities),
    )
