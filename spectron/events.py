"""The event contract: a versioned envelope and one pydantic model per event type.

Events are what the log stores; everything in Postgres is derived from them. The JSON Schema of
each type is generated into `schemas/events/` (see `spectron.schemas`) for non-Python producers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
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
from spectron.vectors import (
    MAX_VECTOR_DIMENSIONS,
    VECTOR_DTYPES,
    VectorDtype,
    dimensions,
    itemsize,
    pack,
    unpack,
)

SCHEMA_VERSION = 1  # what new events are made at; a type whose schema moved on upcasts it
MAX_EVENT_BYTES = 256 * 1024
# A stored record is its JSON, optionally followed by NUL and the raw bytes of the event's one
# binary field (a MemoryEmbedded vector). JSON never holds a raw NUL, so the first one splits.
BINARY_TAIL = b"\x00"

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


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(StrictModel):
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


class MemoryRecordedPayload(StrictModel):
    """A memory an agent remembered; `facts`, when the caller gave them, replace extraction."""

    content: Content
    memory_category: Category = "knowledge"
    metadata: Metadata = Field(default_factory=dict)
    facts: Facts | None = None


class MemoryRecorded(Envelope):
    """`remember` appended a memory; its memory id is the event id."""

    type: Literal["MemoryRecorded"] = "MemoryRecorded"
    payload: MemoryRecordedPayload


def _vector_bytes(value: Any) -> Any:
    """Packed vector bytes from JSON (base64 text) or Python (bytes); anything else as given."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError("vector must be base64 of the packed little-endian values") from exc
    return value


PackedVector = Annotated[
    bytes,
    BeforeValidator(_vector_bytes),
    Field(min_length=1, max_length=MAX_VECTOR_DIMENSIONS * 4),
    PlainSerializer(lambda data: base64.b64encode(data).decode(), when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64",
            "description": "The components as little-endian `dtype` values, base64 in JSON"
            " (the stored record carries the raw bytes).",
        }
    ),
]


class MemoryEmbeddedPayload(StrictModel):
    """The embedding the enrichment processor computed for a memory, recorded so replay never re-embeds.

    Version 2: `vector` holds the components packed as little-endian `dtype` values.
    """

    # in Python, `vector` also takes a sequence of numbers, packed as `dtype` (_pack_floats)
    memory_id: uuid.UUID
    model: str = Field(min_length=1, max_length=200)
    dtype: VectorDtype = Field(default="float32", description="Width of each stored component.")
    vector: PackedVector

    @model_validator(mode="before")
    @classmethod
    def _pack_floats(cls, data: Any) -> Any:
        vector = data.get("vector", b"") if isinstance(data, dict) else b""
        if not isinstance(vector, str | bytes | bytearray | memoryview):
            dtype = data.get("dtype", "float32")
            return {**data, "vector": pack(vector, dtype if dtype in VECTOR_DTYPES else "float32")}
        return data

    @model_validator(mode="after")
    def _whole_components(self) -> MemoryEmbeddedPayload:
        size = itemsize(self.dtype)
        if len(self.vector) % size or len(self.vector) // size > MAX_VECTOR_DIMENSIONS:
            raise ValueError(
                f"vector is {len(self.vector)} bytes: not 1 to {MAX_VECTOR_DIMENSIONS}"
                f" {self.dtype} values"
            )
        return self

    @property
    def dimensions(self) -> int:
        """Number of components."""
        return dimensions(self.vector, self.dtype)

    def values(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The components as float32, whatever width the log holds."""
        return unpack(self.vector, self.dtype)


def upcast_memory_embedded_v1_v2(document: dict[str, Any]) -> dict[str, Any]:
    """A version-1 MemoryEmbedded document as version 2: its JSON float list is packed float32.

    Version 1 stored `vector` as JSON numbers; version 2 adds `dtype` and packs the values. The
    float32 packing is what the recall projection always made of the list, so an old log
    replays into the state it built.
    """
    if document.get("schema_version") != 1:
        return document
    return {**document, "schema_version": 2}  # the version-2 payload packs a float list


class MemoryEmbedded(Envelope):
    """Enrichment output: the vector of one memory under one model."""

    type: Literal["MemoryEmbedded"] = "MemoryEmbedded"
    # the bump narrows the envelope's Literal[1]: older documents reach it through the upcaster
    schema_version: Literal[2] = Field(  # type: ignore[assignment]
        description="Version of this event type's schema."
    )
    payload: MemoryEmbeddedPayload

    @model_validator(mode="before")
    @classmethod
    def _upcast(cls, data: Any) -> Any:
        return upcast_memory_embedded_v1_v2(data) if isinstance(data, dict) else data


class FactsExtractedPayload(StrictModel):
    """Facts an extractor found in a memory, recorded so replay never re-runs the extractor."""

    memory_id: uuid.UUID
    extractor: str = Field(min_length=1, max_length=200, description="Extractor id and version.")
    facts: Facts


class FactsExtracted(Envelope):
    """Enrichment output: the entities, attributes and relations of one memory."""

    type: Literal["FactsExtracted"] = "FactsExtracted"
    payload: FactsExtractedPayload


class EnrichmentFailedPayload(StrictModel):
    """An enrichment step gave up on a memory; the memory itself stays recallable."""

    memory_id: uuid.UUID
    enricher: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class EnrichmentFailed(Envelope):
    """Enrichment output when it failed for good (e.g. a malformed LLM answer)."""

    type: Literal["EnrichmentFailed"] = "EnrichmentFailed"
    payload: EnrichmentFailedPayload


class EntityTypeRegisteredPayload(StrictModel):
    """An entity type that guides extraction for memories at and below the event's scope."""

    entity_type: EntityType


class EntityTypeRegistered(Envelope):
    """A scope registered (or redefined) an entity type."""

    type: Literal["EntityTypeRegistered"] = "EntityTypeRegistered"
    payload: EntityTypeRegisteredPayload


class ReflectionRecordedPayload(StrictModel):
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


class MemoriesForgottenPayload(StrictModel):
    """Memories whose keys were destroyed: their content is gone from the log and projections."""

    memory_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_FORGOTTEN_PER_EVENT)
    selector: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "What the caller asked to forget (memory id, or scope and filters), for audit;"
            " metadata values are withheld."
        ),
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


def event_document(event: Envelope) -> tuple[dict[str, Any], bytes | None]:
    """An event as a JSON-ready document without its binary field, and that field's raw bytes."""
    if isinstance(event, MemoryEmbedded):
        document = event.model_dump(mode="json", exclude={"payload": {"vector"}})
        return document, event.payload.vector
    return event.model_dump(mode="json"), None


def encode_event(event: Envelope) -> bytes:
    """Serialise an event to the bytes stored in the log: JSON, then NUL and its binary field."""
    document, tail = event_document(event)
    return orjson.dumps(document) + (b"" if tail is None else BINARY_TAIL + tail)


def record_head(raw: bytes) -> bytes:
    """The JSON part of a stored record (all of it unless a binary tail follows)."""
    return raw.split(BINARY_TAIL, 1)[0]


def decode_event(raw: bytes) -> AnyEvent:
    """Parse log bytes (or a producer's plain JSON) into an event, or raise MalformedEvent saying why."""
    if len(raw) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"event is {len(raw)} bytes; at most {MAX_EVENT_BYTES}")
    try:
        if BINARY_TAIL not in raw:
            return _EVENT_ADAPTER.validate_json(raw)
        head, tail = raw.split(BINARY_TAIL, 1)
        return _EVENT_ADAPTER.validate_python(_with_tail(head, tail))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise MalformedEvent(f"{where}: {first['msg']}") from exc


def _with_tail(head: bytes, tail: bytes) -> dict[str, Any]:
    """The document of a record with a binary tail: the tail is its payload's vector."""
    try:
        document = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"event: Invalid JSON before the binary tail: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("payload"), dict):
        raise MalformedEvent("event: a binary tail needs an object with a payload object")
    if "vector" in document["payload"]:
        raise MalformedEvent("payload.vector: given twice (in the JSON and as the binary tail)")
    document["payload"]["vector"] = tail
    return document


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
