"""A session's memory operations: remember, recall, reflect, profile, state, history, forget, and
entity types. Each needs a capability of the session's key (spectron.http.deps).
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query

from spectron.asof import as_of_from_text
from spectron.calls import (
    Forget,
    GetHistory,
    GetProfile,
    GetState,
    Reads,
    Recall,
    Reflect,
    RegisterEntityType,
    Remember,
)
from spectron.errors import InvalidScope
from spectron.facts import EntityType
from spectron.forgetting import ForgetResult
from spectron.history import HistoryEntry
from spectron.http.bodies import (
    AsOfIn,
    Consistency,
    ForgetRequest,
    RecallRequest,
    ReflectRequest,
    RememberRequest,
)
from spectron.http.deps import (
    AUTH,
    AppMetrics,
    Forgetter,
    ReadAfter,
    Reader,
    Service,
    TimeoutQuery,
    Writer,
)
from spectron.http.routing import SpectronRoute
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.scope import canonical_scope

router = APIRouter(route_class=SpectronRoute, tags=["memory"], dependencies=AUTH)


@router.post("/v1/sessions/{session_id}/remember", status_code=201)
async def remember(
    body: RememberRequest, session: Writer, service: Service, metrics: AppMetrics
) -> RememberResult:
    """Append a memory at the session's scope (needs `write`); returns once the log has it."""
    call = Remember(body.content, body.memory_category, body.metadata, body.facts)
    with metrics.append("remember"):
        return await session.run(service, call)


@router.post("/v1/sessions/{session_id}/recall")
async def recall(
    body: RecallRequest, session: Reader, service: Service, after: ReadAfter = None
) -> RecallResult:
    """Memories visible from the session's scope that best match the query (needs `read`)."""
    reads = Reads(body.consistency, body.timeout, as_of_from_text(body.as_of), after)
    return await session.run(
        service,
        Recall(
            body.query,
            body.top_k,
            body.memory_category,
            body.metadata,
            body.mode,
            body.explain,
            reads,
        ),
    )


@router.post("/v1/sessions/{session_id}/reflect")
async def reflect(
    body: ReflectRequest, session: Reader, service: Service, metrics: AppMetrics
) -> Reflection:
    """Synthesise what the scope can see (needs `read`; `persist` also needs `write`)."""
    call = Reflect(body.query, body.persist, body.top_k)
    if body.persist:
        session.key.require("write")
        with metrics.append("reflect"):
            return await session.run(service, call)
    return await session.run(service, call)


@router.get("/v1/sessions/{session_id}/profile")
async def profile(
    session: Reader,
    service: Service,
    consistency: Consistency = "strong",
    timeout: TimeoutQuery = None,
    as_of: AsOfIn = None,
    after: ReadAfter = None,
) -> Profile:
    """Entity state, persisted reflections, contributions and recent memory (needs `read`)."""
    reads = Reads(consistency, timeout, as_of_from_text(as_of), after)
    return await session.run(service, GetProfile(reads))


@router.get("/v1/sessions/{session_id}/state")
async def state(
    session: Reader,
    service: Service,
    scope: Annotated[
        str | None, Query(description="JSON scope at or below the session's (default: it).")
    ] = None,
    consistency: Consistency = "strong",
    timeout: TimeoutQuery = None,
    as_of: AsOfIn = None,
    after: ReadAfter = None,
) -> State:
    """Entities, attribute chains and relations visible from a scope (needs `read`)."""
    target = session.scope if scope is None else _scope_param(scope)
    session.key.require_scope(target)  # then GetState checks it is at or below the session's
    reads = Reads(consistency, timeout, as_of_from_text(as_of), after)
    return await session.run(service, GetState(target, reads))


@router.get("/v1/sessions/{session_id}/history")
async def history(
    session: Reader,
    service: Service,
    entity: Annotated[str, Query(min_length=1, max_length=500)],
    attribute: Annotated[str | None, Query(max_length=200)] = None,
    as_of: AsOfIn = None,
) -> list[HistoryEntry]:
    """Every value an entity's attribute(s) had at or below the scope (needs `read`)."""
    return await session.run(service, GetHistory(entity, attribute, as_of_from_text(as_of)))


@router.post("/v1/sessions/{session_id}/forget")
async def forget(
    body: ForgetRequest, session: Forgetter, service: Service, metrics: AppMetrics
) -> ForgetResult:
    """Crypto-shred one memory or a scope's memories (needs `forget`); see README "Forgetting"."""
    target = None if body.scope is None else canonical_scope(body.scope)
    if target is not None:
        session.key.require_scope(target)
    call = Forget(body.memory_id, target, body.where, body.reason)
    with metrics.append("forget"):
        return await session.run(service, call)


@router.post("/v1/sessions/{session_id}/entity-types", status_code=201)
async def register_entity_type(
    body: EntityType, session: Writer, service: Service, metrics: AppMetrics
) -> RememberResult:
    """Register an entity type for extraction at and below the scope (needs `write`)."""
    with metrics.append("entity-type"):
        return await session.run(service, RegisterEntityType(body))


def _scope_param(text: str) -> dict[str, str]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidScope(f"scope must be a JSON object: {exc}") from None
    return canonical_scope(value)
