"""Request plumbing: body size limit, JSON parsing and authentication, in that order, before any route
validates a body — so a request without a valid key learns nothing and touches nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spectron.errors import (
    InvalidRequest,
    MalformedJson,
    PayloadTooLarge,
    SpectronError,
    Unauthenticated,
    UnsupportedMediaType,
)
from spectron.http.keys import ApiKey, authenticate
from spectron.http.problems import PROBLEM_MEDIA_TYPE, problem_body

MAX_BODY_BYTES = 256 * 1024


def problem_response(error: SpectronError, instance: str, **extra: Any) -> JSONResponse:
    """An application/problem+json response for `error`."""
    headers = {"WWW-Authenticate": 'Bearer realm="spectron"'} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(error.retry_after))  # RFC 9110: whole seconds
    return JSONResponse(
        problem_body(error, instance, **extra),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` (413) before they are buffered or parsed."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length up front, then count streamed (chunked) bytes as they arrive."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"request bodies are limited to {self.max_bytes} bytes")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await problem_response(too_large, scope["path"])(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large
            return message

        await self.app(scope, limited, send)


class JsonRequest(Request):
    """A request whose JSON is parsed by orjson: strict UTF-8, no NaN, bounded nesting."""

    async def json(self) -> Any:
        """The body as JSON, or MalformedJson (400) saying why."""
        if not hasattr(self, "_json"):
            try:
                self._json = exact_json(await self.body())
            except orjson.JSONDecodeError as exc:
                raise MalformedJson(f"the body is not valid JSON: {exc}") from None
        return self._json


def exact_json(text: bytes | str) -> Any:
    """JSON parsed by orjson, whose JSONDecodeError says why not; integers past 64 bits exact.

    orjson turns such integers into floats; the stdlib keeps them exact, so validation refuses
    2**64 as it refuses 2**64 - 1 (orjson vetted the syntax first).
    """
    parsed = orjson.loads(text)
    return json.loads(text) if _has_huge_number(parsed) else parsed


def _json_by_default(scope: Scope) -> Scope:
    """The request scope, its media type application/json when the client sent none.

    FastAPI hands a route raw bytes for a body without a Content-Type, which then fails schema
    validation with a puzzling 422; a body here is JSON unless it says otherwise.
    """
    if any(name == b"content-type" for name, _ in scope["headers"]):
        return scope
    return {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}


def _has_huge_number(value: Any) -> bool:
    """True when a parsed JSON value holds a float as large as an integer past 63 bits."""
    if isinstance(value, float):
        return abs(value) >= 2.0**63
    if isinstance(value, dict):
        return any(_has_huge_number(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_huge_number(item) for item in value)
    return False


def bearer_secret(request: Request) -> str | None:
    """The secret from `Authorization: Bearer <secret>`, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def request_key(request: Request) -> ApiKey:
    """The API key the route wrapper authenticated for this request."""
    key = getattr(request.state, "api_key", None)
    if not isinstance(key, ApiKey):
        raise Unauthenticated("an API key is required")
    return key


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class SpectronRoute(APIRoute):
    """A route that authenticates /v1 requests and parses their JSON before FastAPI validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: key → body → JSON → unknown query parameters → validation."""
        handler = super().get_route_handler()
        needs_key = self.path.startswith("/v1/")
        queries = _query_names(self.dependant)

        async def route(request: Request) -> Response:
            request = JsonRequest(_json_by_default(request.scope), request.receive)
            if needs_key:
                service = request.app.state.service
                async with service.pool.connection() as conn:
                    request.state.api_key = await authenticate(conn, bearer_secret(request))
            unknown = sorted(set(request.query_params) - queries)
            if unknown:
                raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}")
            if await request.body():
                kind = request.headers["content-type"].split(";")[0].strip().lower()
                if kind != "application/json" and not kind.endswith("+json"):
                    raise UnsupportedMediaType(f"send JSON (application/json), not {kind!r}")
                await request.json()
            return await handler(request)

        return route
