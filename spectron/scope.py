"""Scopes: validated, canonical dicts of string dimensions, and the visibility rule between them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import combinations
from typing import Any

import orjson

from spectron.errors import InvalidScope

Scope = dict[str, str]

MAX_DIMENSIONS = 8
MAX_VALUE_LENGTH = 256
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"
_KEY = re.compile(KEY_PATTERN)


def canonical_scope(scope: Any) -> Scope:
    """Validate a scope and return it with keys sorted; raise InvalidScope when it is not one."""
    if not isinstance(scope, Mapping):
        raise InvalidScope(f"scope must be a dict of strings, got {type(scope).__name__}")
    if not scope:
        raise InvalidScope("scope must have at least one dimension")
    if len(scope) > MAX_DIMENSIONS:
        raise InvalidScope(f"scope has {len(scope)} dimensions; at most {MAX_DIMENSIONS} allowed")
    for key, value in scope.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise InvalidScope(f"scope key {key!r} must match {_KEY.pattern}")
        if not isinstance(value, str):
            raise InvalidScope(
                f"scope value for {key!r} must be a string, got {type(value).__name__}"
            )
        if not value or len(value) > MAX_VALUE_LENGTH or not value.isprintable():
            raise InvalidScope(
                f"scope value for {key!r} must be 1-{MAX_VALUE_LENGTH} printable characters"
            )
    return {key: scope[key] for key in sorted(scope)}


def scope_key(scope: Scope) -> str:
    """The canonical text form of a (canonical) scope: compact JSON with sorted keys."""
    return orjson.dumps(scope, option=orjson.OPT_SORT_KEYS).decode()


def is_within(inner: Scope, outer: Scope) -> bool:
    """True when every dimension of `outer` is also in `inner` with the same value (inner ⊇ outer)."""
    return all(inner.get(key) == value for key, value in outer.items())


def is_visible(memory_scope: Scope, query_scope: Scope) -> bool:
    """DESIGN rule 1: a memory is visible to a query when one scope contains the other."""
    return is_within(memory_scope, query_scope) or is_within(query_scope, memory_scope)


def ancestor_keys(scope: Scope) -> list[str]:
    """Canonical keys of every non-empty subset of `scope` (itself included): the scopes it sees upward."""
    items = sorted(scope.items())
    return [
        scope_key(dict(subset))
        for size in range(1, len(items) + 1)
        for subset in combinations(items, size)
    ]
