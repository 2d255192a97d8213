"""Append throughput and latency of the embedded log, with and without in-process projectors.

`python -m benchmarks.appends [--per-agent 400]` prints one row per configuration: concurrent
agents remembering as fast as they can, each `remember` timed until the log acknowledged it
(fsynced group commit). "projectors off" is the log alone, as when the projectors run in another
process; "projectors on" shares this process's event loop (and the 2 cores) with them.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.stats import distribution
from spectron import SpectronClient
from spectron.embedding.hashing import HashingEmbedder


async def measure(agents: int, per_agent: int, projectors: bool) -> dict[str, float | int]:
    """Appends/s and latency percentiles (ms) of `agents` concurrent writers on a fresh home."""
    with tempfile.TemporaryDirectory(prefix="spectron-appends-") as home:
        client = SpectronClient(
            home=Path(home),
            embedder=HashingEmbedder(),
            extractor="none",
            run_projectors=projectors,
        )
        try:
            latencies: list[float] = []

            async def agent(n: int, count: int, record: bool) -> None:
                scope = {"org": "bench", "project": f"p{n % 4}", "agent": f"a{n}"}
                async with client.sessions.create(scope=scope) as session:
                    for i in range(count):
                        started = time.perf_counter()
                        await session.remember(f"agent {n} note {i} about widgets and gadgets")
                        if record:
                            latencies.append((time.perf_counter() - started) * 1000)

            await asyncio.gather(*(agent(n, 20, False) for n in range(agents)))  # warm-up
            started = time.perf_counter()
            await asyncio.gather(*(agent(n, per_agent, True) for n in range(agents)))
            seconds = time.perf_counter() - started
        finally:
            await client.close()
    return {"per_second": len(latencies) / seconds, **distribution(latencies)}


async def main(per_agent: int) -> None:
    """Measure each configuration and print the table."""
    table = Table(
        "agents",
        "projectors",
        "appends/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        title="remember (embedded)",
    )
    for agents in (1, 8, 32):
        for projectors in (False, True):
            row = await measure(agents, max(per_agent // max(agents // 8, 1), 50), projectors)
            table.add_row(
                str(agents),
                "on" if projectors else "off",
                f"{row['per_second']:,.0f}",
                *(f"{row[p]:.2f}" for p in ("p50_ms", "p95_ms", "p99_ms")),
            )
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-agent", type=int, default=400, help="remembers per agent (8 agents)")
    asyncio.run(main(parser.parse_args().per_agent))
