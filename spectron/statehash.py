"""A stable hash of the projected state: equal hashes mean replay built what live projection built."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from psycopg import AsyncConnection

# Every projected table, in a fixed order, each with a total order over its rows. Values are hashed
# as Postgres renders them as text, so vectors and timestamps compare exactly.
HASHED_TABLES: tuple[tuple[str, str], ...] = (
    ("memories", "memory_id"),
    ("dead_letters", 'consumer, partition, "offset"'),
    ("positions", "consumer, partition"),
    ("entity_types", "scope_key, name"),
    ("entities", "scope_key, type, name_key"),
    ("fact_sources", "memory_id"),
    ("attribute_values", "memory_id, ordinal"),
    ("relations", "memory_id, ordinal"),
    ("enrichment_failures", "memory_id, enricher"),
    ("reflections", "reflection_id"),
    ("entity_mentions", "memory_id, type, name_key"),
    ("memory_counts", "scope_key, memory_category, principal"),
)


# How values render as text depends on the session (a timestamp in its time zone): fixed here, so
# a hash printed on one host compares with one printed on another
RENDERING = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
)


async def projection_hash(conn: AsyncConnection[Any]) -> str:
    """SHA-256 over every row of every projected table (the connection's search_path picks the schema)."""
    digest = hashlib.sha256()
    async with conn.transaction():
        for name, value in RENDERING:
            await conn.execute("SELECT set_config(%s, %s, true)", [name, value])
        for table, order in HASHED_TABLES:
            digest.update(table.encode())
            # a server-side cursor streams the rows: the state may not fit in memory
            async with conn.cursor(name=f"hash_{table}") as cur:
                # table and order are the constants above, never input
                await cur.execute(f"SELECT t::text FROM {table} t ORDER BY {order}")
                async for (row,) in cur:
                    digest.update(orjson.dumps(row))
    return digest.hexdigest()
