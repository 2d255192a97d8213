"""Command-line values that need parsing: a bad one is a one-line message and exit code 2."""

from __future__ import annotations

from typing import Any

import orjson
import typer
from rich.console import Console

from spectron.client import SpectronClient
from spectron.errors import StoreMisconfigured

_stderr = Console(stderr=True, emoji=False)


def json_flag(text: str, flag: str) -> Any:
    """The JSON value `flag` was given, or a clear message and exit 2 (never a traceback)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        _stderr.print(f"[red]{flag} is not JSON ({exc}): {text!r}[/red]", highlight=False)
        raise typer.Exit(2) from None


def existing_store(client: SpectronClient) -> SpectronClient:
    """`client`, unless its embedded home holds no store yet: a command that reads one would
    create an empty one there and report on it (a mistyped --home "verified" 0 records)."""
    settings = client.settings
    if settings.database_url is None and settings.base_url is None:
        home = settings.home.expanduser()
        if not (home / "pgdata" / "PG_VERSION").exists():
            raise StoreMisconfigured(
                f"no Spectron store in {home}: check --home or SPECTRON_HOME (nothing was created)"
            )
    return client
