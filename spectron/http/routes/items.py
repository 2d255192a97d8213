"""Routes that read key-value items (LangGraph's store over HTTP); writes are remember and forget.

Each answers after the projections caught up with the log (read your writes).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from spectron.asof import as_of_from_text
from spectron.http.bodies import AsOfIn
from spectron.http.deps import AUTH, Reader, Service
from spectron.http.routing import SpectronRoute
from spectron.items import (
    MAX_KEY_CHARS,
    ItemRow,
    ItemVersion,
    read_items,
    read_scopes,
    read_versions,
)

router = APIRouter(route_class=SpectronRoute, tags=["items"], dependencies=AUTH)
BOUND = 30.0  # read-your-writes bound of these reads, seconds
KeyQuery = Annotated[str, Query(min_length=1, max_length=MAX_KEY_CHARS)]


@router.get("/v1/sessions/{session_id}/items")
async def items(
    session: Reader,
    service: Service,
    key: Annotated[str | None, Query(min_length=1, max_length=MAX_KEY_CHARS)] = None,
    exact: Annotated[bool, Query(description="Only the session's own scope.")] = False,
    as_of: AsOfIn = None,
) -> list[ItemRow]:
    """Current store items at or below the session's scope (needs `read`)."""
    return await read_items(
        service, session.scope, key=key, exact=exact, as_of=as_of_from_text(as_of), bound=BOUND
    )


@router.get("/v1/sessions/{session_id}/items/versions")
async def item_versions(session: Reader, service: Service, key: KeyQuery) -> list[ItemVersion]:
    """Every value a key holds at exactly the session's scope, oldest first (needs `read`)."""
    return await read_versions(service, session.scope, key, bound=BOUND)


@router.get("/v1/sessions/{session_id}/items/scopes")
async def item_scopes(session: Reader, service: Service) -> list[dict[str, str]]:
    """Every scope at or below the session's that holds store items (needs `read`)."""
    return await read_scopes(service, session.scope, bound=BOUND)
