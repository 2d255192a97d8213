"""Migrations that change an index (0007 halfvec, 0010 scope keys beside words), also after a replay died."""

from __future__ import annotations

from pathlib import Path

import psycopg

from projectors.replay import defer_indexes, restore_indexes
from tests.migration_support import SCHEMA, migrate_current, migrate_older


async def test_a_graph_left_to_a_dead_replay_is_built_as_halfvec(
    database: str, tmp_path: Path
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await migrate_older(conn, 7, tmp_path)
        assert "memories_embedding" in await defer_indexes(conn)  # a replay that then died

        assert "0007_halfvec.sql" in await migrate_current(conn)
        assert await restore_indexes(conn) >= 1  # the next start finishes the replay's builds
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            [SCHEMA, "memories_embedding"],
        )
        row = await cur.fetchone()
    assert row is not None and "halfvec_cosine_ops" in row[0]


async def test_a_words_index_left_to_a_dead_replay_is_built_with_scope_keys(
    database: str, tmp_path: Path
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await migrate_older(conn, 10, tmp_path)
        deferred = await defer_indexes(conn)  # a replay that then died
        assert {"memories_tsv", "memories_scope_key"} <= set(deferred)

        assert "0010_scope_keyword_index.sql" in await migrate_current(conn)
        assert await restore_indexes(conn) >= 2  # the next start finishes the replay's builds
        cur = await conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND indexname"
            " IN ('memories_tsv', 'memories_scope_key', 'memories_scope_tsv', 'memories_scope_recent')"
            " ORDER BY indexname",
            [SCHEMA],
        )
        rows = await cur.fetchall()
    assert [(name, definition.split(" USING ")[1]) for name, definition in rows] == [
        ("memories_scope_recent", "btree (scope_key, recorded_at, memory_id)"),
        ("memories_scope_tsv", "gin (scope_key, tsv)"),
    ]


async def test_an_upgraded_store_indexes_words_and_times_by_scope_key(
    database: str, tmp_path: Path
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await migrate_older(conn, 10, tmp_path)
        await migrate_current(conn)
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'memories'"
            " AND (indexdef LIKE '%%tsv%%' OR indexdef LIKE '%%(scope_key%%') ORDER BY 1",
            [SCHEMA],
        )
        assert [name for (name,) in await cur.fetchall()] == [
            "memories_scope_order",
            "memories_scope_recent",
            "memories_scope_tsv",
        ]
