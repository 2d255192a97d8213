"""A Kafka-mode deployment for tests: a topic on the Tansu broker, a database, two workers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg


def unique_topic(name: str) -> str:
    """A topic name no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


WORKER = [sys.executable, "-m", "projectors.faust_app"]  # what `spectron worker` runs


@dataclass(frozen=True)
class KafkaDeployment:
    """A topic, a database and two worker processes projecting one into the other."""

    bootstrap: str
    database: str
    topic: str
    logs: tuple[Path, ...]

    def log_tails(self) -> str:
        """The end of each worker's log, for failure messages."""
        return "\n".join(
            f"--- {p}\n" + "".join(p.read_text().splitlines(True)[-30:]) for p in self.logs
        )


@contextlib.contextmanager
def run_deployment(
    kafka_broker: str, pg_server: str, directory: Path, workers: int = 2
) -> Iterator[KafkaDeployment]:
    """`workers` `projectors.faust_app` processes on a fresh 4-partition topic and database."""
    name = f"k_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = pg_server.replace("/postgres?", f"/{name}?", 1)
    topic = unique_topic("spectron")
    env = {
        **os.environ,
        "SPECTRON_KAFKA_BOOTSTRAP": kafka_broker,
        "SPECTRON_DATABASE_URL": database,
        "SPECTRON_TOPIC": topic,
        "SPECTRON_PARTITIONS": "4",
        "SPECTRON_EMBEDDER": "hashing",
        "SPECTRON_HOME": str(directory),
    }
    logs = tuple(directory / f"worker{i}.log" for i in range(workers))
    procs = []
    try:
        for path in logs:
            with path.open("wb") as out:
                procs.append(
                    subprocess.Popen(WORKER, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
        yield KafkaDeployment(kafka_broker, database, topic, logs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(8)  # the worker exits by itself at most 5 s after SIGTERM
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
