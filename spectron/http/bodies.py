"""Request and response bodies of the HTTP API (the OpenAPI document is generated from these).

Requests forbid unknown fields, so a `principal` in a body is rejected: the server takes it from the
API key. Domain rules (categories, metadata size and depth, scope shape) are checked by the
MemoryService, so HTTP and in-process callers get the same typed errors.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from spectron.facts import Facts
from spectron.http.keys import PRINCIPAL_PATTERN, Capability
from spectron.scope import KEY_PATTERN, MAX_DIMENSIONS, MAX_VALUE_LENGTH
from spectron.service import MAX_QUERY_CHARS, MAX_TOP_K
from spectron.validation import MAX_CONTENT_CHARS, MAX_METADATA_BYTES, MEMORY_CATEGORIES

MAX_TIMEOUT = 30.0

SCOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Scope dimensions, e.g. {org, project, agent}; values are printable strings.",
    "minProperties": 1,
    "maxProperties": MAX_DIMENSIONS,
    "propertyNames": {"pattern": KEY_PATTERN},
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": MAX_VALUE_LENGTH},
}
# These fields accept any JSON here and are documented precisely in the schema: the service checks
# them (canonical_scope, check_content, ...) and raises the same typed error as in-process use.
ScopeIn = Annotated[Any, WithJsonSchema(SCOPE_SCHEMA)]
ContentIn = Annotated[
    Any, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_CONTENT_CHARS})
]
CategoryIn = Annotated[Any, WithJsonSchema({"type": "string", "enum": list(MEMORY_CATEGORIES)})]
MetadataIn = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}],
            "description": f"A JSON object of at most {MAX_METADATA_BYTES} bytes and 8 levels.",
        }
    ),
]
Query = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K)]
Consistency = Literal["strong", "eventual"]
Timeout = Annotated[
    float | None,
    Field(ge=0, le=MAX_TIMEOUT, description="Read-your-writes bound in seconds (server default)."),
]


class _Request(BaseModel):
    # strict: no "5" → 5 or 1 → true coercion; JSON still carries uuids and dates as strings
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionCreate(_Request):
    """Open a session at a scope that contains the API key's scope floor."""

    scope: ScopeIn


class SessionInfo(BaseModel):
    """An open session."""

    session_id: uuid.UUID
    scope: dict[str, str]
    principal: str = Field(description="Stamped on every event this session appends.")
    capabilities: list[Capability]


class RememberRequest(_Request):
    """Append one memory at the session's scope."""

    content: ContentIn
    memory_category: CategoryIn = "knowledge"
    metadata: MetadataIn = Field(None, description="Provenance, e.g. {source, agent}.")
    facts: Facts | None = Field(None, description="Structured facts; replace extraction.")


class RecallRequest(_Request):
    """Find memories visible from the session's scope."""

    query: Query
    top_k: TopK = 5
    memory_category: Annotated[
        Any,
        WithJsonSchema(
            {"anyOf": [{"type": "string", "enum": list(MEMORY_CATEGORIES)}, {"type": "null"}]}
        ),
    ] = None
    metadata: MetadataIn = Field(None, description="Exact-match filter on these metadata keys.")
    consistency: Consistency = "strong"
    timeout: Timeout = None
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    as_of: AsOfIn = None
    explain: bool = Field(
        False, description="Say for every item which legs found it and at what rank."
    )


AsOfIn = Annotated[
    str | None,
    Field(
        None,
        description="Answer as of a log time (ISO 8601 with zone) or position ('partition:offset').",
        max_length=64,
    ),
]


class ForgetRequest(_Request):
    """Forget one memory, or every memory at or below a scope (default: the session's) matching `where`."""

    memory_id: Annotated[uuid.UUID | None, Field(strict=False)] = None
    scope: ScopeIn = Field(None, description="At or below the session's scope.")
    where: dict[str, Any] | None = Field(
        None, description="memory_category, principal, metadata (containment), before, after."
    )
    reason: Annotated[str | None, Field(max_length=2000)] = None


class ReflectRequest(_Request):
    """Synthesise what the session's scope can see; `persist` records the reflection (needs write)."""

    query: Query
    persist: bool = False
    top_k: TopK = 10


class KeyCreate(_Request):
    """Create an API key (admin): its floor must lie at or below the caller's floor."""

    principal: Annotated[str, Field(pattern=PRINCIPAL_PATTERN)]
    scope_floor: Annotated[dict[str, Any], WithJsonSchema({**SCOPE_SCHEMA, "minProperties": 0})]
    capabilities: Annotated[list[Capability], Field(min_length=1)]
    description: Annotated[str, Field(max_length=500)] = ""


class KeyInfo(BaseModel):
    """An API key as listed: never its secret."""

    key_id: str
    secret_prefix: str
    principal: str
    scope_floor: dict[str, str]
    capabilities: list[Capability]
    description: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyInfo):
    """A new key with its secret: shown this once, stored only as a hash."""

    secret: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    detail: str = ""
