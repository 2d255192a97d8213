"""Routes for people and the web console: list and get memories, the scope tree, audit, the log's
status and hash-chain verification, dead letters (the console's own files: spectron.http.console_ui).

Same rules as every /v1 route: an API key (authenticated by SpectronRoute), its capabilities and its
scope floor, problem+json errors.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from spectron.asof import as_of_from_text
from spectron.calls import GetAudit, GetMemory, ListMemories, Reads
from spectron.errors import InvalidInput
from spectron.health import (
    DeadLetterInfo,
    LogStatus,
    RetryOutcome,
    dead_letter_info,
    retry_outcome,
)
from spectron.history import AuditPage
from spectron.http import keys as keystore
from spectron.http.bodies import AsOfIn, Consistency, KeyInfo
from spectron.http.deps import AUTH, AdminKey, Reader, ReadKey, Service, TimeoutQuery
from spectron.http.routing import SpectronRoute, exact_json, request_key
from spectron.memories import MAX_PAGE, MemoryPage, MemoryRecord
from spectron.scope_tree import ScopeTree
from spectron.validation import MEMORY_CATEGORIES
from spectron.verification import LogVerification

router = APIRouter(route_class=SpectronRoute, dependencies=AUTH)
CategoryQuery = Annotated[
    str | None, Query(description=f"Only this category: {', '.join(MEMORY_CATEGORIES)}.")
]
MetadataQuery = Annotated[
    str | None, Query(max_length=16_384, description="JSON object: exact match on these keys.")
]


def _metadata(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return exact_json(text)  # as a body is parsed
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"metadata must be a JSON object: {exc}") from None


def _unrestricted(key: keystore.ApiKey) -> None:
    # a dead letter has no readable scope: it is anyone's, so only a key allowed at every scope
    # (the floor {}) may see or retry it; others get 403 scope-outside-floor
    key.require_scope({})


class DeadLetterRetry(BaseModel):
    """Retry one dead letter (partition and offset), or all of them (neither)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    partition: Annotated[int | None, Field(ge=0)] = None
    offset: Annotated[int | None, Field(ge=0)] = None


@router.get("/v1/whoami", tags=["keys"])
async def whoami(request: Request) -> KeyInfo:
    """The calling key: principal, scope floor and capabilities (what a console may offer)."""
    return KeyInfo(**request_key(request).public())


@router.get("/v1/scopes", tags=["memory"])
async def scopes(key: ReadKey, service: Service, as_of: AsOfIn = None) -> ScopeTree:
    """Scopes holding memories visible from the key's floor, with counts (needs `read`)."""
    return await service.scope_tree(key.scope_floor, as_of=as_of_from_text(as_of))


@router.get("/v1/sessions/{session_id}/memories", tags=["memory"])
async def list_memories(
    session: Reader,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    memory_category: CategoryQuery = None,
    metadata: MetadataQuery = None,
    consistency: Consistency = "strong",
    timeout: TimeoutQuery = None,
    as_of: AsOfIn = None,
) -> MemoryPage:
    """Memories visible from the session's scope, newest first, with log positions (needs `read`)."""
    reads = Reads(consistency, timeout, as_of_from_text(as_of))
    call = ListMemories(limit, cursor, memory_category, _metadata(metadata), reads)
    return await session.run(service, call)


@router.get("/v1/sessions/{session_id}/memories/{memory_id}", tags=["memory"])
async def get_memory(
    session: Reader,
    service: Service,
    memory_id: uuid.UUID,
    consistency: Consistency = "strong",
    timeout: TimeoutQuery = None,
    as_of: AsOfIn = None,
) -> MemoryRecord:
    """One memory visible from the session's scope (needs `read`); 404 once forgotten."""
    reads = Reads(consistency, timeout, as_of_from_text(as_of))
    return await session.run(service, GetMemory(memory_id, reads))


@router.get("/v1/sessions/{session_id}/audit", tags=["audit"])
async def audit(
    session: Reader,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    principal: Annotated[str | None, Query(max_length=128)] = None,
    since: AsOfIn = None,
    until: AsOfIn = None,
) -> AuditPage:
    """Newest events visible from the session's scope: who, what, when, ids, positions (`read`)."""
    call = GetAudit(limit, principal, as_of_from_text(since), as_of_from_text(until))
    return await session.run(service, call)


@router.get("/v1/log/verification", tags=["audit"])
async def verify_log(key: ReadKey, service: Service) -> LogVerification:
    """Check the log's hash chain end to end, now (needs `read`; reads the whole log)."""
    return await service.verify_log()


@router.get("/v1/status", tags=["operations"])
async def status(key: ReadKey, service: Service) -> LogStatus:
    """Per partition log end, projected position and lag; pending embeddings; dead letters."""
    return await service.log_status()


@router.get("/v1/dead-letters", tags=["operations"])
async def list_dead_letters(
    key: AdminKey, service: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterInfo]:
    """Dead letters in log order (needs `admin` and the floor `{}`)."""
    from spectron.dlq import list_dead_letters as listed

    _unrestricted(key)
    return [dead_letter_info(letter) for letter in await listed(service.pool, limit)]


@router.post("/v1/dead-letters/retry", tags=["operations"])
async def retry_dead_letters(
    body: DeadLetterRetry, key: AdminKey, service: Service
) -> RetryOutcome:
    """Decode dead letters again; apply those that decode (needs `admin` and the floor `{}`)."""
    from spectron.events import LogPosition

    _unrestricted(key)
    if (body.partition is None) != (body.offset is None):
        raise InvalidInput("give both partition and offset, or neither")
    positions = (
        None
        if body.partition is None or body.offset is None
        else [LogPosition(body.partition, body.offset)]
    )
    report = await service.retry_dead_letters(positions)
    return retry_outcome(report)
