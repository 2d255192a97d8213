"""Command-line values that need parsing: a bad one is a one-line message and exit code 2."""

from __future__ import annotations

from typing import Any

import orjson
import typer
from rich.console import Console

_stderr = Console(stderr=True)


def json_flag(text: str, flag: str) -> Any:
    """The JSON value `flag` was given, or a clear message and exit 2 (never a traceback)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        _stderr.print(f"[red]{flag} is not JSON ({exc}): {text!r}[/red]", highlight=False)
        raise typer.Exit(2) from None
