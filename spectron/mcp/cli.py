"""The `spectron mcp` command (imports the `mcp` package only when run)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from spectron.errors import SpectronError
from spectron.scope import canonical_scope


def mcp(
    scope: Annotated[
        str, typer.Option(help='Base scope as JSON, e.g. \'{"org": "acme", "project": "p1"}\'.')
    ],
    base_url: Annotated[
        str | None,
        typer.Option(help="A `spectron serve` URL; its API key then governs. Default: local."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="API key for --base-url (or SPECTRON_API_KEY).")
    ] = None,
) -> None:
    """Run an MCP server over stdio (nothing but the protocol goes to stdout)."""
    try:
        from spectron.mcp.stdio import serve_stdio
    except ImportError:
        typer.echo('spectron mcp needs the MCP SDK: pip install "spectron[mcp]"', err=True)
        raise typer.Exit(2) from None
    from spectron.client import SpectronClient

    try:
        base = canonical_scope(json.loads(scope))
    except (ValueError, SpectronError) as exc:
        typer.echo(f"--scope must be a JSON scope: {exc}", err=True)
        raise typer.Exit(2) from None
    client = SpectronClient(base_url=base_url, api_key=api_key) if base_url else SpectronClient()
    try:
        asyncio.run(serve_stdio(client, base))
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
