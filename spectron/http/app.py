"""The FastAPI app: every session operation over JSON, API-key auth, problem+json errors, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

from spectron.asof import AsOf
from spectron.config import Settings
from spectron.errors import (
    Forbidden,
    InvalidRequest,
    InvalidScope,
    KeyNotFound,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    ScopeOutsideFloor,
    ServerUnavailable,
    SpectronError,
)
from spectron.events import LogPosition
from spectron.facts import EntityType
from spectron.forgetting import ForgetResult
from spectron.history import HistoryEntry
from spectron.http import keys as keystore
from spectron.http.bodies import (
    MAX_TIMEOUT,
    AsOfIn,
    Consistency,
    ForgetRequest,
    Health,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    RecallRequest,
    ReflectRequest,
    RememberRequest,
    SessionCreate,
    SessionInfo,
)
from spectron.http.console_ui import ui_router
from spectron.http.metrics import CONTENT_TYPE, Metrics, RequestTimer
from spectron.http.problems import PROBLEM_MEDIA_TYPE
from spectron.http.routes_console import console_router
from spectron.http.routing import BodyLimit, SpectronRoute, problem_response, request_key
from spectron.http.sessions import (
    OpenSession,
    SessionPolicy,
    close_session,
    find_session,
    open_session,
)
from spectron.log.owed import READ_AFTER_HEADER
from spectron.mcp import mount_mcp
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.scope import canonical_scope, is_within
from spectron.service import MemoryService

log = logging.getLogger(__name__)
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sk_...`.")
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
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {PROBLEM_MEDIA_TYPE: {}}}
    for status, text in {
        400: "Malformed JSON.",
        401: "No API key, or an unknown or revoked one.",
        403: "The key's scope floor or capabilities do not allow this.",
        404: "No such session for this key.",
        413: "The body is too large.",
        422: "Invalid input; nothing was appended.",
        503: "The database or the log is unavailable for now: retry after `Retry-After` seconds.",
    }.items()
}


def _version() -> str:
    try:
        return version("spectron")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def service_of(request: Request) -> MemoryService:
    """The MemoryService this app serves."""
    service: MemoryService = request.app.state.service
    return service


Service = Annotated[MemoryService, Depends(service_of)]


def session_policy(service: MemoryService) -> SessionPolicy:
    """The idle lifetime and per-key cap of HTTP sessions, from the service's settings."""
    return SessionPolicy(service.settings.session_idle_seconds, service.settings.sessions_per_key)


def session_with(capability: keystore.Capability) -> Callable[..., Awaitable[OpenSession]]:
    """A dependency: the caller's open session, once its key is known to have `capability`."""

    async def dependency(request: Request, session_id: str) -> OpenSession:
        key = request_key(request)
        service = service_of(request)
        async with service.pool.connection() as conn:
            session = await find_session(conn, session_id, key, session_policy(service))
        key.require(capability)
        return session

    return dependency


async def any_session(request: Request, session_id: str) -> OpenSession:
    """The caller's open session, whatever its capabilities."""
    service = service_of(request)
    async with service.pool.connection() as conn:
        return await find_session(conn, session_id, request_key(request), session_policy(service))


Reader = Annotated[OpenSession, Depends(session_with("read"))]
Writer = Annotated[OpenSession, Depends(session_with("write"))]
Forgetter = Annotated[OpenSession, Depends(session_with("forget"))]
Admin = Annotated[keystore.ApiKey, Depends(request_key)]


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
    _add_error_handlers(app)
    _add_probes(app, metrics)
    _add_session_routes(app, metrics)
    _add_key_routes(app)
    mount_mcp(app)  # /mcp, when the `mcp` extra is installed
    from spectron.http.items import router as items_router  # it imports this module

    app.include_router(items_router)
    app.include_router(console_router)
    app.include_router(ui_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def spectron_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SpectronError)
        return problem_response(exc, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": _message(err),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        if any(err["type"] == "json_invalid" for err in errors):
            return problem_response(MalformedJson("the body is not valid JSON"), request.url.path)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(part for part in first["loc"] if part != "body") or "body"
        error = InvalidRequest(f"{where}: {first['msg']}")
        return problem_response(error, request.url.path, errors=errors)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error: SpectronError
        if exc.status_code == 404:
            error = NotFound(f"no route {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        else:
            error = SpectronError(str(exc.detail))
            error.type, error.status = "http-error", exc.status_code
        return problem_response(error, request.url.path)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error serving %s", request.url.path, exc_info=exc)
        error = SpectronError("internal server error; see the server log")
        error.type = "internal-error"
        return problem_response(error, request.url.path)

    app.add_exception_handler(SpectronError, spectron_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _message(err: Any) -> str:
    loc = [str(part) for part in err.get("loc", ())]
    if err.get("type") == "extra_forbidden" and loc[-1:] == ["principal"]:
        return "not allowed: the server stamps the API key's principal on every event"
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    return str(err.get("msg", "invalid"))


def _add_probes(app: FastAPI, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz(service: Service) -> Health:
        """Liveness: 503 only in a state the process cannot leave by itself (restart it)."""
        watch = service.watch
        if not watch.live:
            why = watch.reason or "its database watch stopped"
            raise ServerUnavailable(f"the process cannot recover by itself: {why}")
        return Health(status="ok", detail="" if watch.state == "up" else str(watch.unavailable()))

    @app.get("/readyz", tags=["operations"])
    async def readyz(service: Service) -> Health:
        """Readiness: the database answers and the log reports its end offsets (2 s bound)."""
        try:
            async with asyncio.timeout(2.0):
                async with service.pool.connection() as conn:
                    await conn.execute("SELECT 1")
                await service.log.end_offsets()
        except Exception as exc:  # whatever the cause, the answer is 'not ready'
            raise ServerUnavailable(f"not ready: {type(exc).__name__}: {exc}") from exc
        return Health(status="ok")

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus(service: Service) -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(await metrics.render(service), media_type=CONTENT_TYPE)


def _add_session_routes(app: FastAPI, metrics: Metrics) -> None:
    auth = [Security(bearer)]

    @app.post(
        "/v1/sessions",
        status_code=201,
        tags=["sessions"],
        dependencies=auth,
        responses={
            429: {
                "description": "The key holds as many open sessions as it may.",
                "content": {PROBLEM_MEDIA_TYPE: {}},
            }
        },
    )
    async def create_session(
        body: SessionCreate, request: Request, service: Service
    ) -> SessionInfo:
        """Open a session at a scope containing the key's scope floor."""
        key = request_key(request)
        scope = canonical_scope(body.scope)
        key.require_scope(scope)
        async with service.pool.connection() as conn:
            session = await open_session(conn, key, scope, session_policy(service))
        return _info(session)

    @app.get("/v1/sessions/{session_id}", tags=["sessions"], dependencies=auth)
    async def get_session(session: Annotated[OpenSession, Depends(any_session)]) -> SessionInfo:
        """The session's scope, principal and capabilities."""
        return _info(session)

    @app.delete("/v1/sessions/{session_id}", status_code=204, tags=["sessions"], dependencies=auth)
    async def delete_session(
        session: Annotated[OpenSession, Depends(any_session)], service: Service
    ) -> Response:
        """Close the session; its memories stay."""
        async with service.pool.connection() as conn:
            await close_session(conn, session)
        return Response(status_code=204)

    @app.post(
        "/v1/sessions/{session_id}/remember",
        status_code=201,
        tags=["memory"],
        dependencies=auth,
    )
    async def remember(body: RememberRequest, session: Writer, service: Service) -> RememberResult:
        """Append a memory at the session's scope (needs `write`); returns once the log has it."""
        with metrics.append("remember"):
            return await service.remember(
                session.scope,
                session.key.principal,
                body.content,
                body.memory_category,
                body.metadata,
                body.facts,
            )

    @app.post("/v1/sessions/{session_id}/recall", tags=["memory"], dependencies=auth)
    async def recall(
        body: RecallRequest, session: Reader, service: Service, after: ReadAfter = None
    ) -> RecallResult:
        """Memories visible from the session's scope that best match the query (needs `read`)."""
        return await service.recall(
            session.scope,
            body.query,
            body.top_k,
            memory_category=body.memory_category,
            metadata=body.metadata,
            consistency=body.consistency,
            timeout=body.timeout,
            mode=body.mode,
            as_of=_as_of(body.as_of),
            after=after,
            explain=body.explain,
        )

    @app.post("/v1/sessions/{session_id}/reflect", tags=["memory"], dependencies=auth)
    async def reflect(body: ReflectRequest, session: Reader, service: Service) -> Reflection:
        """Synthesise what the scope can see (needs `read`; `persist` also needs `write`)."""
        if body.persist:
            session.key.require("write")
            with metrics.append("reflect"):
                return await service.reflect(
                    session.scope, session.key.principal, body.query, True, body.top_k
                )
        return await service.reflect(
            session.scope, session.key.principal, body.query, False, body.top_k
        )

    @app.get("/v1/sessions/{session_id}/profile", tags=["memory"], dependencies=auth)
    async def profile(
        session: Reader,
        service: Service,
        consistency: Consistency = "strong",
        timeout: TimeoutQuery = None,
        as_of: AsOfIn = None,
        after: ReadAfter = None,
    ) -> Profile:
        """Entity state, persisted reflections, contributions and recent memory (needs `read`)."""
        return await service.profile(
            session.scope,
            consistency=consistency,
            timeout=timeout,
            as_of=_as_of(as_of),
            after=after,
        )

    @app.get("/v1/sessions/{session_id}/state", tags=["memory"], dependencies=auth)
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
        session.key.require_scope(target)
        if not is_within(target, session.scope):
            raise InvalidScope(f"a session at {session.scope} cannot read state at {target}")
        return await service.get_state(
            target, consistency=consistency, timeout=timeout, as_of=_as_of(as_of), after=after
        )

    @app.get("/v1/sessions/{session_id}/history", tags=["memory"], dependencies=auth)
    async def history(
        session: Reader,
        service: Service,
        entity: Annotated[str, Query(min_length=1, max_length=500)],
        attribute: Annotated[str | None, Query(max_length=200)] = None,
        as_of: AsOfIn = None,
    ) -> list[HistoryEntry]:
        """Every value an entity's attribute(s) had at or below the scope (needs `read`)."""
        return await service.history(session.scope, entity, attribute, _as_of(as_of))

    @app.post("/v1/sessions/{session_id}/forget", tags=["memory"], dependencies=auth)
    async def forget(body: ForgetRequest, session: Forgetter, service: Service) -> ForgetResult:
        """Crypto-shred one memory or a scope's memories (needs `forget`); see README "Forgetting"."""
        target = None if body.scope is None else canonical_scope(body.scope)
        if target is not None:
            session.key.require_scope(target)
        with metrics.append("forget"):
            return await service.forget(
                session.scope,
                session.key.principal,
                body.memory_id,
                target=target,
                where=body.where,
                reason=body.reason,
            )

    @app.post(
        "/v1/sessions/{session_id}/entity-types",
        status_code=201,
        tags=["memory"],
        dependencies=auth,
    )
    async def register_entity_type(
        body: EntityType, session: Writer, service: Service
    ) -> RememberResult:
        """Register an entity type for extraction at and below the scope (needs `write`)."""
        with metrics.append("entity-type"):
            return await service.register_entity_type(session.scope, session.key.principal, body)


def _as_of(text: str | None) -> AsOf:
    """'partition:offset' is a log position; anything else is an ISO time, checked by the service."""
    if text is not None and text.count(":") == 1 and all(p.isdigit() for p in text.split(":")):
        partition, offset = text.split(":")
        return LogPosition(int(partition), int(offset))
    return text


def _scope_param(text: str) -> dict[str, str]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidScope(f"scope must be a JSON object: {exc}") from None
    return canonical_scope(value)


def _info(session: OpenSession) -> SessionInfo:
    return SessionInfo(
        session_id=session.session_id,
        scope=session.scope,
        principal=session.key.principal,
        capabilities=sorted(session.key.capabilities),
    )


def _add_key_routes(app: FastAPI) -> None:
    auth = [Security(bearer)]

    def admin_of(key: keystore.ApiKey) -> keystore.ApiKey:
        key.require("admin")
        return key

    @app.post("/v1/keys", status_code=201, tags=["keys"], dependencies=auth)
    async def create_key(body: KeyCreate, caller: Admin, service: Service) -> KeyCreated:
        """Create a key (needs `admin`) at or below the caller's floor, with a subset of its caps."""
        admin = admin_of(caller)
        floor = keystore.check_floor(body.scope_floor)
        if not is_within(floor, admin.scope_floor):
            raise ScopeOutsideFloor(f"the new floor {floor} is not within {admin.scope_floor}")
        if not set(body.capabilities) <= admin.capabilities:
            raise Forbidden("a key cannot grant capabilities it does not have")
        async with service.pool.connection() as conn:
            key, secret = await keystore.create_key(
                conn, body.principal, floor, body.capabilities, body.description
            )
        return KeyCreated(**key.public(), secret=secret)

    @app.get("/v1/keys", tags=["keys"], dependencies=auth)
    async def list_keys(caller: Admin, service: Service) -> list[KeyInfo]:
        """Keys the caller manages: floor at or below its own, no capability it lacks (needs `admin`)."""
        admin = admin_of(caller)
        async with service.pool.connection() as conn:
            found = await keystore.list_keys(conn)
        return [KeyInfo(**key.public()) for key in found if admin.manages(key)]

    @app.delete("/v1/keys/{key_id}", tags=["keys"], dependencies=auth)
    async def revoke_key(key_id: str, caller: Admin, service: Service) -> KeyInfo:
        """Revoke a key the caller manages (needs `admin`); its sessions close."""
        admin = admin_of(caller)
        async with service.pool.connection() as conn:
            key = await keystore.get_key(conn, key_id)
            if key is None or not admin.manages(key):
                raise KeyNotFound(f"no API key {key_id!r} that this key manages")
            revoked = await keystore.revoke_key(conn, key_id)
        assert revoked is not None
        return KeyInfo(**revoked.public())


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with error responses declared as application/problem+json."""
    if app.openapi_schema is None:
        app.openapi_schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            description=(
                "Errors are RFC 9457 problem details (`application/problem+json`) whose `type` is"
                " `https://spectron.dev/problems/<slug>`. Every /v1 route needs an API key."
            ),
        )
        app.openapi_schema["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
        _require_response_fields(app.openapi_schema)
        for path in app.openapi_schema["paths"].values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45" and PROBLEM_MEDIA_TYPE in response.get("content", {}):
                        response["content"] = {
                            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        }
    return app.openapi_schema


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _require_response_fields(document: dict[str, Any]) -> None:
    """Responses always carry every field (defaults included): say so, so clients need no `?`."""
    schemas: dict[str, Any] = document["components"]["schemas"]
    inputs: set[str] = set()
    todo = [
        name
        for path in document["paths"].values()
        for operation in path.values()
        for name in _refs(operation.get("requestBody", {}))
    ]
    while todo:
        name = todo.pop()
        if name not in inputs:
            inputs.add(name)
            todo.extend(_refs(schemas.get(name, {})))
    for name, schema in schemas.items():
        if name not in inputs and name != "Problem" and "properties" in schema:
            schema["required"] = list(schema["properties"])


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors (invalid-request only).",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
