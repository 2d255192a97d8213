"""The checked-in JSON Schemas are the contract for other producers: they must match the models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import jsonschema
import orjson
import pytest

from spectron.errors import MalformedEvent
from spectron.events import MemoryRecorded, MemoryRecordedPayload, decode_event, encode_event
from spectron.schemas import SCHEMA_DIR, event_schemas, render


def test_checked_in_schemas_match_models() -> None:
    generated = event_schemas()
    on_disk = {path.name for path in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(generated), "run: python -m spectron.cli schemas"
    for name, schema in generated.items():
        assert (SCHEMA_DIR / name).read_bytes() == render(schema), (
            f"{name} drifted from its model; regenerate with `spectron schemas`"
        )


def sample() -> MemoryRecorded:
    return MemoryRecorded(
        event_id=uuid.uuid4(),
        schema_version=1,
        scope={"project": "p", "org": "acme"},
        principal="agent:w1",
        client_time=datetime.now(UTC),
        payload=MemoryRecordedPayload(content="hello", metadata={"source": "x"}),
    )


def test_event_roundtrip_and_schema_validity() -> None:
    event = sample()
    raw = encode_event(event)
    assert decode_event(raw) == event
    assert list(event.scope) == ["org", "project"], "scope is canonical: keys sorted"
    schema = orjson.loads((SCHEMA_DIR / "MemoryRecorded.v1.json").read_bytes())
    jsonschema.validate(orjson.loads(raw), schema)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(type="Nope"), "type"),
        (lambda e: e.update(schema_version=2), "schema_version"),
        (lambda e: e.pop("principal"), "principal"),
        (lambda e: e["payload"].update(content=""), "content"),
        (lambda e: e["payload"].update(memory_category="gossip"), "memory_category"),
        (lambda e: e.update(scope={"org": 5}), "scope"),
        (lambda e: e.update(extra_field=1), "extra_field"),
    ],
)
def test_invalid_events_are_rejected_with_a_reason(mutate, reason) -> None:
    body = orjson.loads(encode_event(sample()))
    mutate(body)
    with pytest.raises(MalformedEvent, match=reason):
        decode_event(orjson.dumps(body))


def test_non_json_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        decode_event(b"\xff\xfe not json")
