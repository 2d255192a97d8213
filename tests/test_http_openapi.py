"""The OpenAPI document: served by the app, checked in for the TypeScript client, and in sync."""

from __future__ import annotations

import json

from spectron.http.openapi import DEFAULT_PATH, openapi_document, render


def test_checked_in_openapi_matches_the_app() -> None:
    assert DEFAULT_PATH.read_text() == render(), (
        "clients/typescript/openapi.json is stale: run `python -m spectron.http.openapi`"
    )


def test_document_covers_every_session_operation() -> None:
    document = openapi_document()
    operations = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert {
        "create_session",
        "delete_session",
        "remember",
        "recall",
        "reflect",
        "profile",
        "state",
        "register_entity_type",
        "healthz",
        "readyz",
        "prometheus",
    } <= operations
    remember = document["paths"]["/v1/sessions/{session_id}/remember"]["post"]
    assert remember["security"] == [{"HTTPBearer": []}]
    assert set(remember["responses"]["403"]["content"]) == {"application/problem+json"}
    request = document["components"]["schemas"]["RememberRequest"]
    assert request["additionalProperties"] is False
    assert "principal" not in request["properties"]
    result = document["components"]["schemas"]["RecallResult"]
    assert set(result["required"]) == set(result["properties"])
    json.dumps(document)  # plain JSON all the way down
