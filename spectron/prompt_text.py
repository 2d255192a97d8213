"""Text for prompts that stored content cannot forge: quoted blocks and inline values.

`formatted` blocks are pasted into other agents' prompts, and their source lines (scope, writer,
id) are what the server vouches for. Content is whatever a writer sent, so it is never rendered
where structure could be: every line of it carries the quote bar, and values shown inside a
structure line are escaped when they hold a line break or another unprintable character.
"""

from __future__ import annotations

import orjson

from spectron.scope import Scope, scope_key

QUOTE = "│ "


def inline(text: str) -> str:
    """`text` for one structure line: as is when printable, else JSON-quoted (line breaks escaped)."""
    return text if text.isprintable() else orjson.dumps(text).decode()


def quoted(text: str, indent: str = "    ") -> list[str]:
    """`text` as quoted lines: each line (any Unicode line break) behind `indent` and the quote bar."""
    return [f"{indent}{QUOTE}{line}".rstrip() for line in text.splitlines() or [""]]


def json_text(value: str) -> str:
    """A value as JSON, so it cannot pass for a separator or another field."""
    return orjson.dumps(value).decode()


def scope_label(scope: Scope) -> str:
    """A scope as JSON with sorted keys: its values cannot pass for separators or other fields."""
    return scope_key(scope)
