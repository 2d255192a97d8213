"""Input rules shared by the client (typed errors before appending) and the event models (poison checks)."""

from __future__ import annotations

import math
from typing import Any

import orjson

from spectron.errors import InvalidCategory, InvalidContent, InvalidInput, InvalidMetadata

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


def storable_text_problem(text: str) -> str | None:
    """Why Postgres cannot store `text` as text (a NUL, a lone surrogate), or None when it can."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (lone surrogate)"
    return None


def check_text(
    value: Any,
    what: str,
    max_chars: int,
    *,
    blank: bool = False,
    error: type[InvalidInput] = InvalidInput,
) -> str:
    """Return `value` when it is storable text of at most `max_chars` (non-blank unless `blank`).

    Every caller-given text that reaches Postgres (content, queries, names, filters, descriptions)
    passes here, so a NUL or a lone surrogate is a typed 422, never a driver error.
    """
    if not isinstance(value, str):
        raise error(f"{what} must be a string, got {type(value).__name__}")
    if not blank and not value.strip():
        raise error(f"{what} must not be empty")
    if len(value) > max_chars:
        raise error(f"{what} is {len(value)} characters; at most {max_chars} allowed")
    return check_storable(value, what, error)


def check_storable(value: str, what: str, error: type[InvalidInput] = InvalidInput) -> str:
    """Return `value` when Postgres can store it as text (no NUL, no lone surrogate)."""
    problem = storable_text_problem(value)
    if problem is not None:
        raise error(f"{what} {problem}")
    return value


def check_content(content: Any) -> str:
    """Return content when it is non-blank text within the size limit, else raise InvalidContent."""
    return check_text(content, "content", MAX_CONTENT_CHARS, error=InvalidContent)


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
            problem = storable_text_problem(key)
            if problem is not None:
                raise InvalidMetadata(f"metadata key {key!r} {problem}")
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadata("metadata numbers must be finite")
    elif isinstance(value, str):
        problem = storable_text_problem(value)
        if problem is not None:
            raise InvalidMetadata(f"metadata string {problem}")
    elif value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            raise InvalidMetadata("metadata integers must fit in 64 bits")
    else:
        raise InvalidMetadata(f"metadata value of type {type(value).__name__} is not JSON")
