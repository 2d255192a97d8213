"""Operator commands: `spectron dlq list` and `spectron dlq retry`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spectron.cli_input import existing_store
from spectron.client import SpectronClient
from spectron.errors import SpectronError

T = TypeVar("T")
console = Console(emoji=False)  # ":-1:" in "-1:-1:" is not a thumbs-down
dlq_app = typer.Typer(
    help="Dead letters: log records the projections could not decode.", no_args_is_help=True
)

HomeOption = Annotated[
    Path | None, typer.Option(help="Spectron home (embedded Postgres lives here).")
]


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a SpectronError is a one-line message and exit code 1."""
    try:
        return asyncio.run(main)
    except SpectronError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None


@dlq_app.command("list")
def dlq_list(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 100,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show dead letters in log order: position, log time, size, reason and the first bytes."""
    from spectron.dlq import count_dead_letters, list_dead_letters

    async def main() -> None:
        client = existing_store(SpectronClient(home=home, run_projectors=False, extractor="none"))
        service = await client.service()
        try:
            letters = await list_dead_letters(service.pool, limit)
            total = await count_dead_letters(service.pool)
        finally:
            await client.close()
        if json_output:
            for letter in letters:
                typer.echo(
                    json.dumps(
                        {
                            "consumer": letter.consumer,
                            "partition": letter.partition,
                            "offset": letter.offset,
                            "recorded_at": letter.recorded_at.isoformat(),
                            "reason": letter.reason,
                            "bytes": len(letter.value),
                            "preview": letter.preview(),
                        }
                    )
                )
            return
        table = Table("partition", "offset", "logged", "bytes", "reason", "value")
        for letter in letters:
            table.add_row(
                str(letter.partition),
                str(letter.offset),
                f"{letter.recorded_at:%Y-%m-%d %H:%M:%S}",
                str(len(letter.value)),
                Text(letter.reason),
                Text(letter.preview()),
            )
        console.print(table)
        console.print(f"{total} dead letters" + (f" (showing {len(letters)})" * (total > limit)))

    _run(main())


@dlq_app.command("retry")
def dlq_retry(
    home: HomeOption = None,
    partition: Annotated[
        int | None, typer.Option(help="Retry only the dead letter at this partition...")
    ] = None,
    offset: Annotated[int | None, typer.Option(help="...and this offset.")] = None,
) -> None:
    """Decode dead letters again (e.g. after an upgrade); apply those that decode, keep the rest.

    A revived memory is enriched too (embedded, facts extracted). Exit 1 if any remains dead.
    """
    from spectron.events import LogPosition

    if (partition is None) != (offset is None):
        console.print("[red]give both --partition and --offset, or neither[/red]")
        raise typer.Exit(2)
    positions = None if partition is None or offset is None else [LogPosition(partition, offset)]

    async def main() -> int:
        # the configured extractor (not "none"): a revived memory gets the passes workers run
        client = existing_store(SpectronClient(home=home, run_projectors=False))
        service = await client.service()
        try:
            report = await service.retry_dead_letters(positions)
        finally:
            await client.close()
        for position in report.revived:
            console.print(f"{position.partition}:{position.offset} revived and projected")
        for position, reason in report.kept.items():
            console.print(
                f"{position.partition}:{position.offset} still dead: {reason}",
                style="red",
                markup=False,
                highlight=False,
            )
        for position in report.missing:
            console.print(f"[red]{position.partition}:{position.offset}: no such dead letter[/red]")
        console.print(f"revived {len(report.revived)}, still dead {len(report.kept)}")
        return 1 if report.kept or report.missing else 0

    raise typer.Exit(_run(main()))
