"""Upgrading to halfvec (migration 0007) after a replay died with the graph dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from psycopg import sql

from projectors.replay import defer_indexes, restore_indexes
from spectron.db import PROJECTION_MIGRATIONS
from spectron.migrations import migrate

SCHEMA = "spectron"


async def test_a_graph_left_to_a_dead_replay_is_built_as_halfvec(
    database: str, tmp_path: Path
) -> None:
    before = tmp_path / "before_halfvec"
    before.mkdir()
    for entry in PROJECTION_MIGRATIONS.iterdir():
        if entry.name.endswith(".sql") and int(entry.name[:4]) < 7:
            shutil.copyfile(str(entry), before / entry.name)
    params = {"embedding_dim": 8}
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await migrate(conn, SCHEMA, before, params)
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
        assert "memories_embedding" in await defer_indexes(conn)  # a replay that then died

        applied = await migrate(conn, SCHEMA, PROJECTION_MIGRATIONS, params)
        assert "0007_halfvec.sql" in applied
        await conn.set_autocommit(True)
        await conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
        assert await restore_indexes(conn) >= 1  # the next start finishes the replay's builds
        cur = await conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            [SCHEMA, "memories_embedding"],
        )
        row = await cur.fetchone()
    assert row is not None and "halfvec_cosine_ops" in row[0]
