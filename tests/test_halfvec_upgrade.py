"""Upgrading to halfvec (migration 0007) after a replay died with the graph dropped."""

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
