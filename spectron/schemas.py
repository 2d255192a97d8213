"""JSON Schema of every event type, generated from the pydantic models into `schemas/events/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import orjson

from spectron.events import EVENT_TYPES
from spectron.events_v1 import LEGACY_EVENT_TYPES

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, one per event type and schema version (superseded ones too)."""
    schemas = {}
    for model in (*EVENT_TYPES, *LEGACY_EVENT_TYPES):
        name = model.model_fields["type"].default
        [version] = get_args(model.model_fields["schema_version"].annotation)
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://spectron.dev/schemas/events/{name}.v{version}.json"
        schemas[f"{name}.v{version}.json"] = schema
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    """Stable text of a schema: sorted keys, indented, newline at the end."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate the checked-in schema files; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in event_schemas().items():
        path = directory / name
        path.write_bytes(render(schema))
        written.append(path)
    return written
