"""JSON Schema of every event type, generated from the pydantic models into `schemas/events/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from spectron.events import EVENT_TYPES, SCHEMA_VERSION

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "events"


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, one per event type and schema version."""
    schemas = {}
    for model in EVENT_TYPES:
        name = model.model_fields["type"].default
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://spectron.dev/schemas/events/{name}.v{SCHEMA_VERSION}.json"
        schemas[f"{name}.v{SCHEMA_VERSION}.json"] = schema
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
