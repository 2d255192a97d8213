"""Replay speed: build a large log fast, project it live, then time `rebuild` and `replay --verify`.

    python -m benchmarks.replay --memories 25000 [--home DIR] [--cli] [--skip-rebuild]

The log holds what a real deployment's log holds: memories (80% at agents, 15% at projects, 5% at
the org), the hashing embedder's MemoryEmbedded for each, explicit facts on some memories (single
values that supersede each other, multi values, relations), entity types, enrichment failures,
persisted reflections and a few poison records. Each memory's MemoryEmbedded is appended right
after it in the same batch (what the enricher appends, without its per-batch fsync); the embedding
pass is then marked done so the live enricher does not embed again. The live, incremental
projection is built by the in-process tailer, exactly as in production; replay must then hash
like it. A store that already exists under `--home` is reused (only the replay is timed again).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.workload import ScopeTree, TextGenerator
from projectors.enrichment import embed_memories, enrichment_consumer
from projectors.replay import ReplayReport
from spectron import SpectronClient, maintenance
from spectron.embedding.hashing import HashingEmbedder
from spectron.events import (
    EnrichmentFailed,
    EnrichmentFailedPayload,
    EntityTypeRegistered,
    EntityTypeRegisteredPayload,
    Envelope,
    MemoryRecorded,
    MemoryRecordedPayload,
    ReflectionRecorded,
    ReflectionRecordedPayload,
    new_event_fields,
)
from spectron.facts import AttributeFact, EntityRef, EntityType, Facts, RelationFact
from spectron.positions import raise_enrichment_position
from spectron.service import MemoryService

BATCH = 500  # memories per append (one transaction)
console = Console()


def _facts(index: int) -> Facts | None:
    """Explicit facts on every 20th memory: a tier that later memories supersede, tags, a relation."""
    if index % 20 != 7:
        return None
    customer = EntityRef(type="Customer", name=f"customer-{index % 300:03d}")
    tiers = ("free", "pro", "enterprise")
    return Facts(
        entities=[customer],
        attributes=[
            AttributeFact(entity=customer, key="tier", value=tiers[(index // 300) % 3]),
            AttributeFact(entity=customer, key="tag", value=f"t{index % 7}", cardinality="multi"),
        ],
        relations=[
            RelationFact(
                subject=customer,
                predicate="referred_by",
                object=EntityRef(type="Customer", name=f"customer-{(index + 1) % 300:03d}"),
            )
        ]
        if index % 60 == 7
        else [],
    )


def _batch(tree: ScopeTree, text: TextGenerator, start: int, count: int) -> list[Envelope]:
    """`count` memories from index `start`, their vectors, and the occasional other event."""
    embedder = HashingEmbedder()
    memories: list[MemoryRecorded | ReflectionRecorded] = []
    others: list[Envelope] = []
    for index in range(start, start + count):
        scope = tree.scope_for(index)
        fields = new_event_fields(scope, f"agent:{index % 13}")
        memories.append(
            MemoryRecorded(
                **fields,
                payload=MemoryRecordedPayload(
                    content=text.memory(index), metadata={"i": index}, facts=_facts(index)
                ),
            )
        )
        if index % 1000 == 500:
            memories.append(
                ReflectionRecorded(
                    **new_event_fields(scope, "agent:reflector"),
                    payload=ReflectionRecordedPayload(
                        query=f"what about memory {index}?",
                        summary=f"Reflection on memory {index}: {text.memory(index)}",
                        sources=[memories[-1].event_id],
                        uncertain=["whether it still holds"],
                        reasoner="benchmark@1",
                    ),
                )
            )
        if index % 2000 == 3:
            others.append(
                EntityTypeRegistered(
                    **new_event_fields(scope, "agent:admin"),
                    payload=EntityTypeRegisteredPayload(
                        entity_type=EntityType(name="Customer", triggers=[f"client {index}"])
                    ),
                )
            )
        if index % 1000 == 9:
            others.append(
                EnrichmentFailed(
                    **new_event_fields(scope, "system:enricher"),
                    payload=EnrichmentFailedPayload(
                        memory_id=memories[-1].event_id,
                        enricher="extract:benchmark",
                        reason="the model answered nonsense",
                    ),
                )
            )
    return [*memories, *embed_memories(embedder, memories), *others]


async def build_log(home: Path, memories: int) -> None:
    """Append the log (no projectors running), then let the live tailer project all of it."""
    tree = ScopeTree(projects=8, agents=8)
    text = TextGenerator()
    embedder = HashingEmbedder()
    started = time.perf_counter()
    async with SpectronClient(
        home=home, embedder=embedder, extractor="none", run_projectors=False
    ) as writer:
        service = await writer.service()
        for start in range(0, memories, BATCH):
            await service.log.append(_batch(tree, text, start, min(BATCH, memories - start)))
            if start % (10 * BATCH) == 0:
                # poison from another producer: the projector dead-letters it and goes on
                await service.log.append_raw(start % service.log.partitions, None, b"{not json")
        ends = await service.log.end_offsets()
        async with service.pool.connection() as conn:
            # the embedding pass already ran (its events are in the log): mark it done
            for partition, end in ends.items():
                await raise_enrichment_position(conn, enrichment_consumer(embedder), partition, end)
    appended = time.perf_counter() - started
    console.print(f"appended {sum(ends.values()):,} events in {appended:.1f}s")
    started = time.perf_counter()
    async with SpectronClient(home=home, embedder=embedder, extractor="none") as live:
        service = await live.service()
        missing = await maintenance.catch_up(service, bound=3_600)
        assert missing == 0, f"{missing} memories unembedded"
    console.print(f"live projection caught up in {time.perf_counter() - started:.1f}s")


async def _events(service: MemoryService) -> int:
    return sum((await service.log.end_offsets()).values())


async def measure(home: Path, rebuild: bool) -> list[dict[str, Any]]:
    """Time blue/green replay with verification, then an in-place rebuild with hashes compared."""
    rows: list[dict[str, Any]] = []
    async with SpectronClient(home=home, embedder=HashingEmbedder(), extractor="none") as client:
        service = await client.service()
        events = await _events(service)
        outcome = await maintenance.blue_green_replay(service, verify=True)
        rows.append(
            {
                "what": "replay --verify",
                "events": events,
                "report": outcome.replay,
                "equal": outcome.live_hash == outcome.rebuilt_hash and outcome.switched,
            }
        )
        if rebuild:
            before = await maintenance.state_hash(service)
            report = await maintenance.rebuild(service)
            after = await maintenance.state_hash(service)
            rows.append(
                {
                    "what": "rebuild",
                    "events": events,
                    "report": report,
                    "equal": before == after,
                }
            )
    return rows


def run_cli(home: Path) -> int:
    """`spectron replay --verify` itself, as a user runs it; its output goes to the terminal."""
    started = time.perf_counter()
    code = subprocess.call(
        [sys.executable, "-m", "spectron.cli", "replay", "--verify", "--home", str(home)],
    )
    console.print(
        f"`spectron replay --verify` exited {code} after {time.perf_counter() - started:.1f}s"
    )
    return code


def main() -> None:
    """Parse arguments, build the store if missing, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=25_000)
    parser.add_argument("--home", type=Path, default=None, help="default: /tmp/spectron-replay-N")
    parser.add_argument("--cli", action="store_true", help="also run `spectron replay --verify`")
    parser.add_argument("--skip-rebuild", action="store_true", help="only the blue/green replay")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    home: Path = args.home or Path(f"/tmp/spectron-replay-{args.memories}")
    marker = home / "benchmark-built"
    if not marker.exists():
        asyncio.run(build_log(home, args.memories))
        marker.write_text(str(uuid.uuid4()))
    rows = asyncio.run(measure(home, rebuild=not args.skip_rebuild))
    load = os.getloadavg()[0]
    table = Table(
        title=f"replay, {args.memories:,} memories, hashing-384@1, load {load:.1f}"
        f" on {os.cpu_count()} cores",
        caption="s: end to end; apply: events alone; index: deferred indexes + ANALYZE",
    )
    # short headers: the table must fit 80 columns when the output is not a terminal
    for column in ("what", "events", "s", "events/s", "apply s", "apply ev/s", "index s", "equal"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for row in rows:
        report: ReplayReport = row["report"]
        table.add_row(
            row["what"],
            f"{row['events']:,}",
            f"{report.seconds:.2f}",
            f"{report.events_per_second:,.0f}",
            f"{report.apply_seconds:.2f}",
            f"{report.apply_events_per_second:,.0f}",
            f"{report.index_seconds:.2f}",
            "yes" if row["equal"] else "[red]NO[/red]",
        )
    console.print(table)
    if args.cli:
        sys.exit(run_cli(home))
    if not all(row["equal"] for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
