"""Postgres connections: one pool per process, with pgvector registered and the projection schema on the path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from spectron.availability import StoreWatch
from spectron.errors import StoreMisconfigured
from spectron.migrations import KEY_MIGRATIONS, LOG_MIGRATIONS, migrate

LOG_SCHEMA = "spectron_log"
KEYS_SCHEMA = "spectron_keys"
PROJECTION_MIGRATIONS = files("projectors") / "migrations"
# pgvector for the vectors; btree_gin so one GIN index holds scope keys beside words (both ship
# with Postgres images that carry pgvector; btree_gin is trusted, no superuser needed)
EXTENSIONS = ("vector", "btree_gin")


async def create_extensions(conn: AsyncConnection[Any], projection_schema: str) -> None:
    """Create the extensions the projections use in `public` where missing (autocommit connection).

    Named without a schema, an extension lands in the first schema of the search path: `"$user"`,
    which is the projection schema when the role shares its name (compose.yaml's `spectron`). A
    rebuild drops its schemas with CASCADE, which would take the extension and every index using
    it, the live schema's included. One an earlier version put there moves to `public`.
    """
    for extension in EXTENSIONS:
        try:
            await conn.execute(
                sql.SQL("CREATE EXTENSION IF NOT EXISTS {} SCHEMA public").format(
                    sql.Identifier(extension)
                )
            )
        except psycopg.errors.UniqueViolation:
            pass  # another process created it between our check and our insert
        except (
            psycopg.errors.InsufficientPrivilege,
            psycopg.errors.FeatureNotSupported,
            psycopg.errors.UndefinedFile,
        ) as exc:
            # this role may not create it (42501); not installed on the server (0A000 since
            # Postgres 15, 58P01 before)
            raise StoreMisconfigured(
                f"the database needs the {extension!r} extension in schema public and this role"
                f" cannot create it ({exc.diag.message_primary}): install it, or have a"
                f" superuser run CREATE EXTENSION {extension} SCHEMA public"
            ) from exc
    cur = await conn.execute(
        "SELECT e.extname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = ANY(%s) AND (n.nspname = %s OR starts_with(n.nspname, %s))",
        [list(EXTENSIONS), projection_schema, f"{projection_schema}_"],
    )
    for (extension,) in await cur.fetchall():
        await conn.execute(
            sql.SQL("ALTER EXTENSION {} SET SCHEMA public").format(sql.Identifier(extension))
        )


async def prepare_database(uri: str, projection_schema: str, embedding_dim: int) -> None:
    """Create the extensions the projections use and apply the log and projection migrations."""
    async with await AsyncConnection.connect(uri, autocommit=True) as conn:
        await create_extensions(conn, projection_schema)
        await migrate(conn, LOG_SCHEMA, LOG_MIGRATIONS)
        await migrate(conn, KEYS_SCHEMA, KEY_MIGRATIONS)
        await migrate(
            conn,
            projection_schema,
            PROJECTION_MIGRATIONS,
            {"embedding_dim": embedding_dim},
        )


POOL_TIMEOUT = 30.0  # seconds a request may wait for a connection while the database is up
# seconds the pool retries a failed connection before giving up on it (the default, 5 min, backs
# off to a minute between attempts; the watch decides when the database is back)
RECONNECT_TIMEOUT = 5.0
# seconds a background loop (projection, enrichment, vector movers, Kafka workers) waits between
# attempts while the database is down: requests fail at once then, so they would spin
STORE_RETRY = 0.5


class GuardedPool(AsyncConnectionPool[AsyncConnection[Any]]):
    """A pool that fails fast with StoreUnavailable while its watch says the database is down.

    Errors of a broken connection (the server died under a query) become StoreUnavailable too, and
    make the watch probe at once; any other database error passes unchanged.
    """

    watch: StoreWatch | None = None

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:
        """A connection, or StoreUnavailable at once when down (or when it goes down meanwhile)."""
        watch = self.watch
        if watch is None:
            return await super().getconn(timeout)
        watch.raise_if_down()
        try:
            async with watch.waiting():
                return await super().getconn(timeout)
        except TimeoutError as exc:  # released by the watch: the database went down
            raise watch.unavailable() from exc
        except PoolTimeout as exc:
            watch.suspect()
            raise watch.unavailable(f"no connection within {self.timeout:.0f}s ({exc})") from exc

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[AsyncConnection[Any]]:
        """As the pool's, translating the errors of a connection that broke into StoreUnavailable
        (raised in the block, or by the commit when the block ends)."""
        used: AsyncConnection[Any] | None = None
        try:
            async with super().connection(timeout) as used:
                yield used
        except psycopg.Error as exc:
            broken = used is not None and (used.broken or used.closed)
            if self.watch is None or not (broken or lost(exc)):
                raise
            self.watch.suspect()
            raise self.watch.unavailable(f"connection lost: {exc}") from exc


@asynccontextmanager
async def read_snapshot(conn: AsyncConnection[Any]) -> AsyncIterator[None]:
    """Several reads in one snapshot (REPEATABLE READ, READ ONLY), or in the caller's transaction.

    Under READ COMMITTED a projection batch that commits between two reads shows in the second
    only: a profile's counts and its recent memories, a state's entities and their relations.
    """
    outermost = conn.info.transaction_status == TransactionStatus.IDLE
    async with conn.transaction():
        if outermost:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def lost(error: psycopg.Error) -> bool:
    """An error saying the server ended the session: a connection exception (class 08), or a
    shutdown, crash or start-up (57P01-57P03), which can arrive before the socket closes."""
    state = error.sqlstate or ""
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


async def open_pool(
    uri: str, projection_schema: str, max_size: int = 8, watch: StoreWatch | None = None
) -> GuardedPool:
    """Open a pool whose connections see the projection schema first and speak pgvector."""

    async def configure(conn: AsyncConnection[Any]) -> None:
        await register_vector_async(conn)
        await conn.execute(
            sql.SQL("SET search_path TO {}, public").format(sql.Identifier(projection_schema))
        )
        await conn.commit()

    pool = GuardedPool(
        uri,
        min_size=1,
        max_size=max_size,
        configure=configure,
        open=False,
        timeout=POOL_TIMEOUT,
        reconnect_timeout=RECONNECT_TIMEOUT,
    )
    await pool.open(wait=True)
    pool.watch = watch
    return pool


async def pinned_embedding_model(uri: str, projection_schema: str) -> str | None:
    """The embedding model an existing projection indexes, or None when there is none yet."""
    async with await AsyncConnection.connect(uri, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", [f"{projection_schema}.projection_meta"]
        )
        row = await cur.fetchone()
        if not row or not row[0]:
            return None
        cur = await conn.execute(
            sql.SQL("SELECT value FROM {}.projection_meta WHERE key = 'embedding_model'").format(
                sql.Identifier(projection_schema)
            )
        )
        found = await cur.fetchone()
        return str(found[0]) if found else None
