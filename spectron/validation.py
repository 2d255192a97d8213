"""Input rules shared by the client (typed errors before appending) and the event models (poison checks)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from spectron.errors import InvalidCategory, InvalidContent, InvalidMetadata

MEMORY_CATEGORIES: tuple[str, ...] = (
    "knowledge",
    "episodic",
    "preference",
    "procedural",
    "reflection",
)
MAX_CONTENT_CHARS = 32_000
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 8


def check_content(content: Any) -> str:
    """Return content when it is non-blank text within the size limit, else raise InvalidContent."""
    if not isinstance(content, str):
        raise InvalidContent(f"content must be a string, got {type(content).__name__}")
    if not content.strip():
        raise InvalidContent("content must not be empty")
    if len(content) > MAX_CONTENT_CHARS:
        raise InvalidContent(
            f"content is {len(content)} characters; at most {MAX_CONTENT_CHARS} allowed"
        )
    if "\x00" in content:
        raise InvalidContent("content must not contain NUL characters")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidContent("content is not valid Unicode text (lone surrogate)") from exc
    return content


def check_category(category: Any) -> str:
    """Return category when it is one of MEMORY_CATEGORIES, else raise InvalidCategory."""
    if category not in MEMORY_CATEGORIES:
        raise InvalidCategory(
            f"memory_category {category!r} is not one of {', '.join(MEMORY_CATEGORIES)}"
        )
    return str(category)


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Return metadata when it is a JSON object of bounded size and depth, else raise InvalidMetadata."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata(f"metadata must be a dict, got {type(metadata).__name__}")
    _check_json(metadata, depth=1)
    try:
        size = len(orjson.dumps(metadata))
    except TypeError as exc:  # pragma: no cover - _check_json already rejects these
        raise InvalidMetadata(f"metadata is not JSON-serialisable: {exc}") from exc
    if size > MAX_METADATA_BYTES:
        raise InvalidMetadata(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    return metadata


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMetadata(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata(f"metadata keys must be strings, got {key!r}")
            if "\x00" in key:
                raise InvalidMetadata("metadata keys must not contain NUL characters")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadata("metadata numbers must be finite")
    elif isinstance(value, str):
        if "\x00" in value:
            raise InvalidMetadata("metadata strings must not contain NUL characters")
    elif value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidMetadata("metadata integers must fit in 64 bits")
    else:
        raise InvalidMetadata(f"metadata value of type {type(value).__name__} is not JSON")
