"""Every error as RFC 9457 problem+json: Spectron's own, request validation, routing, and the unexpected."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from spectron.errors import InvalidRequest, MalformedJson, MethodNotAllowed, NotFound, SpectronError
from spectron.http.routing import problem_response

log = logging.getLogger(__name__)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error the app raises as problem+json."""

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
