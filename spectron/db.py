"""Postgres connections: one pool per process, with pgvector registered and the projection schema on the path."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from spectron.migrations import KEY_MIGRATIONS, LOG_MIGRATIONS, migrate

LOG_SCHEMA = "spectron_log"
KEYS_SCHEMA = "spectron_keys"
PROJECTION_MIGRATIONS = files("projectors") / "migrations"


async def prepare_database(uri: str, projection_schema: str, embedding_dim: int) -> None:
    """Create the vector extension and apply the log and projection migrations."""
    async with await AsyncConnection.connect(uri, autocommit=True) as conn:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.UniqueViolation:
            pass  # another process created it between our check and our insert
        await migrate(conn, LOG_SCHEMA, LOG_MIGRATIONS)
        await migrate(conn, KEYS_SCHEMA, KEY_MIGRATIONS)
        await migrate(
            conn,
            projection_schema,
            PROJECTION_MIGRATIONS,
            {"embedding_dim": embedding_dim},
        )


async def open_pool(
    uri: str, projection_schema: str, max_size: int = 8
) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """Open a pool whose connections see the projection schema first and speak pgvector."""

    async def configure(conn: AsyncConnection[Any]) -> None:
        await register_vector_async(conn)
        await conn.execute(
            sql.SQL("SET search_path TO {}, public").format(sql.Identifier(projection_schema))
        )
        await conn.commit()

    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        uri, min_size=1, max_size=max_size, configure=configure, open=False, timeout=30
    )
    await pool.open(wait=True)
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
