"""The event contract: a versioned envelope and one pydantic model per event type.

Events are what the log stores; everything in Postgres is derived from them. The JSON Schema of
each type is generated into `schemas/events/` (see `spectron.schemas`) for non-Python producers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from spectron.errors import MalformedEvent
from spectron.facts import EntityType, Facts
from spectron.scope import (
    KEY_PATTERN,
    MAX_DIMENSIONS,
    MAX_VALUE_LENGTH,
    Scope,
    canonical_scope,
    scope_key,
)
from spectron.validation import (
    MAX_CONTENT_CHARS,
    MAX_METADATA_BYTES,
    MEMORY_CATEGORIES,
    check_category,
    check_content,
    check_metadata,
)

SCHEMA_VERSION = 1
MAX_EVENT_BYTES = 256 * 1024

CanonicalScope = Annotated[
    dict[str, str],
    AfterValidator(canonical_scope),
    WithJsonSchema(
        {
            "type": "object",
            "description": "Scope dimensions; keys sorted, values non-empty printable strings.",
            "minProperties": 1,
            "maxProperties": MAX_DIMENSIONS,
            "propertyNames": {"pattern": KEY_PATTERN},
            "additionalProperties": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_VALUE_LENGTH,
            },
        }
    ),
]
Content = Annotated[
    str, Field(min_length=1, max_length=MAX_CONTENT_CHARS), AfterValidator(check_content)
]
Category = Annotated[
    str,
    AfterValidator(check_category),
    WithJsonSchema({"type": "string", "enum": list(MEMORY_CATEGORIES)}),
]
Metadata = Annotated[
    dict[str, Any],
    AfterValidator(check_metadata),
    Field(description=f"Provenance; a JSON object of at most {MAX_METADATA_BYTES} bytes."),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(_Strict):
    """Fields every event carries, whatever its type."""

    event_id: uuid.UUID = Field(description="Unique id of this event; producers make it (uuid4).")
    schema_version: Literal[1] = Field(description="Version of this event type's schema.")
    scope: CanonicalScope
    principal: str = Field(
        min_length=1,
        max_length=256,
        description="Who appended it: set by the server from the API key, never by the caller.",
    )
    client_time: datetime = Field(description="The producer's clock when it made the event.")


class MemoryRecordedPayload(_Strict):
    """A memory an agent remembered; `facts`, when the caller gave them, replace extraction."""

    content: Content
    memory_category: Category = "knowledge"
    metadata: Metadata = Field(default_factory=dict)
    facts: Facts | None = None


class MemoryRecorded(Envelope):
    """`remember` appended a memory; its memory id is the event id."""

    type: Literal["MemoryRecorded"] = "MemoryRecorded"
    payload: MemoryRecordedPayload


class MemoryEmbeddedPayload(_Strict):
    """The embedding the enrichment processor computed for a memory, recorded so replay never re-embeds."""

    memory_id: uuid.UUID
    model: str = Field(min_length=1, max_length=200)
    vector: list[float] = Field(min_length=1, max_length=4096)


class MemoryEmbedded(Envelope):
    """Enrichment output: the vector of one memory under one model."""

    type: Literal["MemoryEmbedded"] = "MemoryEmbedded"
    payload: MemoryEmbeddedPayload


class FactsExtractedPayload(_Strict):
    """Facts an extractor found in a memory, recorded so replay never re-runs the extractor."""

    memory_id: uuid.UUID
    extractor: str = Field(min_length=1, max_length=200, description="Extractor id and version.")
    facts: Facts


class FactsExtracted(Envelope):
    """Enrichment output: the entities, attributes and relations of one memory."""

    type: Literal["FactsExtracted"] = "FactsExtracted"
    payload: FactsExtractedPayload


class EnrichmentFailedPayload(_Strict):
    """An enrichment step gave up on a memory; the memory itself stays recallable."""

    memory_id: uuid.UUID
    enricher: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class EnrichmentFailed(Envelope):
    """Enrichment output when it failed for good (e.g. a malformed LLM answer)."""

    type: Literal["EnrichmentFailed"] = "EnrichmentFailed"
    payload: EnrichmentFailedPayload


class EntityTypeRegisteredPayload(_Strict):
    """An entity type that guides extraction for memories at and below the event's scope."""

    entity_type: EntityType


class EntityTypeRegistered(Envelope):
    """A scope registered (or redefined) an entity type."""

    type: Literal["EntityTypeRegistered"] = "EntityTypeRegistered"
    payload: EntityTypeRegisteredPayload


class ReflectionRecordedPayload(_Strict):
    """A persisted reflection: the reasoner's recorded output, so replay never asks it again."""

    query: str = Field(min_length=1, max_length=4000)
    summary: Content
    sources: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    uncertain: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, max_length=200
    )
    reasoner: str = Field(min_length=1, max_length=200, description="Reasoner id and version.")


class ReflectionRecorded(Envelope):
    """reflect(persist=True): a synthesis that joins the scope's memory (category reflection)."""

    type: Literal["ReflectionRecorded"] = "ReflectionRecorded"
    payload: ReflectionRecordedPayload


MAX_FORGOTTEN_PER_EVENT = 1000


class MemoriesForgottenPayload(_Strict):
    """Memories whose keys were destroyed: their content is gone from the log and projections."""

    memory_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_FORGOTTEN_PER_EVENT)
    selector: dict[str, Any] = Field(
        default_factory=dict,
        description="What the caller asked to forget (memory id, or scope and filters), for audit.",
    )
    reason: str | None = Field(default=None, max_length=2000)


class MemoriesForgotten(Envelope):
    """forget(): a tombstone for memories already crypto-shredded; stored in plaintext."""

    type: Literal["MemoriesForgotten"] = "MemoriesForgotten"
    payload: MemoriesForgottenPayload


AnyEvent = (
    MemoryRecorded
    | MemoryEmbedded
    | FactsExtracted
    | EnrichmentFailed
    | EntityTypeRegistered
    | ReflectionRecorded
    | MemoriesForgotten
)
MemoryLike = MemoryRecorded | ReflectionRecorded
Event = Annotated[AnyEvent, Field(discriminator="type")]
EVENT_TYPES: tuple[type[Envelope], ...] = (
    MemoryRecorded,
    MemoryEmbedded,
    FactsExtracted,
    EnrichmentFailed,
    EntityTypeRegistered,
    ReflectionRecorded,
    MemoriesForgotten,
)
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)


class LogPosition(NamedTuple):
    """Where an event sits in the log: its partition and dense per-partition offset."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as read back from the log, with the position and time the log recorded."""

    event: AnyEvent
    position: LogPosition
    recorded_at: datetime


def new_event_fields(scope: Scope, principal: str) -> dict[str, Any]:
    """Envelope fields for a fresh event made now by this process."""
    return {
        "event_id": uuid.uuid4(),
        "schema_version": SCHEMA_VERSION,
        "scope": scope,
        "principal": principal,
        "client_time": datetime.now(UTC),
    }


def encode_event(event: Envelope) -> bytes:
    """Serialise an event to the canonical JSON bytes stored in the log."""
    return orjson.dumps(event.model_dump(mode="json"))


def decode_event(raw: bytes) -> AnyEvent:
    """Parse log bytes into an event, or raise MalformedEvent saying why."""
    if len(raw) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"event is {len(raw)} bytes; at most {MAX_EVENT_BYTES}")
    try:
        return _EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise MalformedEvent(f"{where}: {first['msg']}") from exc


def memory_text(event: Envelope) -> str | None:
    """The recallable text of an event that creates a memory (its id is the event id), else None."""
    if isinstance(event, MemoryRecorded):
        return event.payload.content
    if isinstance(event, ReflectionRecorded):
        return event.payload.summary
    return None


def partition_key(event: Envelope) -> bytes:
    """The log key of an event: its canonical scope, so one scope's events share a partition."""
    return scope_key(event.scope).encode()
