"""The OpenAPI document as clients need it: errors declared as application/problem+json with one
Problem schema, and response fields required (responses always carry them, defaults included).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from spectron.http.problems import PROBLEM_MEDIA_TYPE

# the error responses every route may give (create_app declares them app-wide)
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


def openapi_schema(app: FastAPI) -> dict[str, Any]:
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
