"""`spectron serve` and `spectron keys create|list|revoke`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Annotated, Any, TypeVar

import typer
from psycopg import AsyncConnection
from rich.console import Console
from rich.table import Table

from spectron.cli_input import json_flag
from spectron.config import Settings
from spectron.errors import SpectronError
from spectron.http import keys as keystore
from spectron.runtime import open_database

T = TypeVar("T")
console = Console(emoji=False)  # ":-1:" in "-1:-1:" is not a thumbs-down
keys_app = typer.Typer(
    help="API keys: create (secret shown once), list, revoke.", no_args_is_help=True
)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (embedded Postgres, or Kafka + Postgres per SPECTRON_* settings)."""
    import uvicorn

    from spectron.http.app import create_app

    console.print(f"Spectron console: http://{host}:{port}/ui (sign in with an API key)")
    # one process owns the embedded Postgres handle and the projector loops: no uvicorn workers
    uvicorn.run(create_app(settings=Settings.from_env()), host=host, port=port, log_level=log_level)


@asynccontextmanager
async def _auth_db(settings: Settings) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection to the database that holds the keys, migrated; embedded Postgres if configured."""
    async with (
        aclosing(await open_database(settings)) as database,
        await AsyncConnection.connect(database.uri) as conn,
    ):
        await keystore.migrate_keys(conn)
        await conn.set_autocommit(True)
        yield conn


def _run(action: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _auth_db(Settings.from_env()) as conn:
            return await action(conn)

    try:
        return asyncio.run(main())
    except SpectronError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@keys_app.command("create")
def create(
    principal: Annotated[str, typer.Option(help="Stamped on every event, e.g. agent:w1.")],
    scope_floor: Annotated[
        str, typer.Option(help="JSON scope the key's sessions must contain; '{}' = any.")
    ],
    capabilities: Annotated[
        str, typer.Option(help="Comma-separated subset of read,write,forget,admin.")
    ] = "read,write",
    description: Annotated[str, typer.Option(help="A note for `keys list`.")] = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key and print its secret (shown this once; only its hash is stored)."""
    floor = json_flag(scope_floor, "--scope-floor")
    key, secret = _run(
        lambda conn: keystore.create_key(conn, principal, floor, capabilities, description)
    )
    if json_output:
        typer.echo(json.dumps({**key.public(), "secret": secret}, default=str))
        return
    console.print(f"key id     {key.key_id}")
    console.print(f"principal  {key.principal}")
    console.print(f"floor      {json.dumps(key.scope_floor)}")
    console.print(f"caps       {','.join(sorted(key.capabilities))}")
    console.print("secret (shown once; store it now):")
    typer.echo(secret)


@keys_app.command("list")
def list_(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List keys (never their secrets)."""
    found = _run(keystore.list_keys)
    if json_output:
        typer.echo(json.dumps([key.public() for key in found], default=str))
        return
    table = Table("key id", "prefix", "principal", "scope floor", "caps", "created", "revoked")
    for key in found:
        table.add_row(
            key.key_id,
            key.secret_prefix + "…",
            key.principal,
            json.dumps(key.scope_floor),
            ",".join(sorted(key.capabilities)),
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key id (key_...).")]) -> None:
    """Revoke a key: its requests get 401 from now on and its sessions close."""
    key = _run(lambda conn: keystore.revoke_key(conn, key_id))
    if key is None:
        console.print(f"[red]no key {key_id}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key.key_id} ({key.principal}) at {key.revoked_at:%Y-%m-%d %H:%M:%S}")
