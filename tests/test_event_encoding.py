"""How events are stored: vectors as packed bytes after the JSON, sealed boxes as raw bytes, each id
once, and version-1 documents read through the upcaster exactly as they were projected before."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from spectron.errors import MalformedEvent
from spectron.events import (
    BINARY_TAIL,
    FactsExtracted,
    FactsExtractedPayload,
    LogPosition,
    MemoryEmbedded,
    MemoryEmbeddedPayload,
    MemoryRecorded,
    MemoryRecordedPayload,
    decode_event,
    encode_event,
    new_event_fields,
    record_head,
)
from spectron.facts import Facts
from spectron.log import RawRecord, decode_record
from spectron.sealing import open_record, seal

SCOPE = {"org": "acme", "project": "disk"}


def unit_vector(seed: int, dim: int = 384) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def memory() -> MemoryRecorded:
    return MemoryRecorded(
        **new_event_fields(SCOPE, "agent:a"),
        payload=MemoryRecordedPayload(content="Competitor X's price is $299/mo."),
    )


def embedded(memory_id: uuid.UUID, dtype: str = "float16") -> MemoryEmbedded:
    return MemoryEmbedded(
        **new_event_fields(SCOPE, "system:enricher"),
        payload=MemoryEmbeddedPayload(
            memory_id=memory_id, model="hashing-384@1", dtype=dtype, vector=unit_vector(1)
        ),
    )


def record(value: bytes) -> RawRecord:
    return RawRecord(LogPosition(0, 0), datetime.now(UTC), None, value)


def opened(value: bytes, key: bytes) -> RawRecord:
    return open_record(record(value), orjson.loads(record_head(value)), key)


@pytest.mark.parametrize(("dtype", "width"), [("float16", 2), ("float32", 4)])
def test_a_vector_is_stored_as_its_packed_bytes_after_the_json(dtype: str, width: int) -> None:
    event = embedded(uuid.uuid4(), dtype)
    raw = encode_event(event)
    head, tail = raw.split(BINARY_TAIL, 1)
    assert len(tail) == 384 * width and b"vector" not in head
    assert decode_event(raw) == event
    # the JSON contract (other producers) carries the same bytes as base64
    assert decode_event(orjson.dumps(event.model_dump(mode="json"))) == event


def test_float16_keeps_a_unit_vector_to_within_rounding() -> None:
    original = unit_vector(2)
    payload = MemoryEmbeddedPayload(
        memory_id=uuid.uuid4(), model="m", dtype="float16", vector=original
    )
    values = payload.values()
    assert values.dtype == np.float32 and payload.dimensions == 384
    assert not np.array_equal(values, original), "float16 rounds"
    assert float(values @ original) / float(np.linalg.norm(values)) > 0.99999


def test_a_version_1_vector_upcasts_to_the_float32_the_projection_always_made_of_it() -> None:
    floats = [float(x) for x in unit_vector(3).astype(np.float64) + 1e-9]
    document = orjson.loads(encode_event(memory()))
    document.update(
        type="MemoryEmbedded",
        payload={"memory_id": document["event_id"], "model": "m", "vector": floats},
    )
    event = decode_event(orjson.dumps(document))
    assert isinstance(event, MemoryEmbedded)
    assert (event.schema_version, event.payload.dtype) == (2, "float32")
    assert event.payload.values().tobytes() == np.asarray(floats, dtype=np.float32).tobytes()


def test_a_vector_given_twice_or_torn_is_malformed() -> None:
    event = embedded(uuid.uuid4())
    head, tail = encode_event(event).split(BINARY_TAIL, 1)
    doc = orjson.loads(head)
    doc["payload"]["vector"] = "AAAA"
    with pytest.raises(MalformedEvent, match="given twice"):
        decode_event(orjson.dumps(doc) + BINARY_TAIL + tail)
    with pytest.raises(MalformedEvent, match="payload"):
        decode_event(head + BINARY_TAIL + tail[:-1])  # half a float16


def test_sealed_records_hold_raw_boxes_and_each_id_once() -> None:
    key = os.urandom(32)
    created = memory()
    vector = embedded(created.event_id)
    facts = FactsExtracted(
        **new_event_fields(SCOPE, "system:enricher"),
        payload=FactsExtractedPayload(
            memory_id=created.event_id, extractor="patterns@1", facts=Facts()
        ),
    )
    for event in (created, vector, facts):
        value = seal(event, created.event_id, key)
        head = record_head(value)
        assert head.count(str(created.event_id).encode()) == 1, "the memory id is stored once"
        assert b'"box"' not in head and b"payload" not in head
        assert decode_record(opened(value, key)).event == event
    # 768 bytes of float16 and the envelope: a third of the version-1 record (~3.2 KB)
    assert len(seal(vector, created.event_id, key)) < 1_200


def test_a_sealed_box_does_not_open_for_another_memory_or_event() -> None:
    key = os.urandom(32)
    created = memory()
    value = seal(embedded(created.event_id), created.event_id, key)
    moved = value.replace(str(created.event_id).encode(), str(uuid.uuid4()).encode())
    assert opened(moved, key).fault is not None
    head, box = value.split(BINARY_TAIL, 1)
    document = orjson.loads(head)
    document["event_id"] = str(uuid.uuid4())
    assert opened(orjson.dumps(document) + BINARY_TAIL + box, key).fault is not None
    tampered = bytearray(value)
    tampered[-1] ^= 1
    assert opened(bytes(tampered), key).fault is not None
    assert opened(value, key).fault is None
