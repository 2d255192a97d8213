"""A projection schema as an older release left it, then upgraded: for migration tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql

from spectron.db import PROJECTION_MIGRATIONS, create_extensions
from spectron.migrations import migrate

SCHEMA = "spectron"
PARAMS = {"embedding_dim": 8}


async def _use_schema(conn: AsyncConnection[Any]) -> None:
    await conn.set_autocommit(True)  # migrate leaves the connection in transaction mode
    await conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))


async def migrate_older(conn: AsyncConnection[Any], version: int, tmp_path: Path) -> None:
    """Apply the projection migrations before `version` only; the connection then uses the schema."""
    older = tmp_path / f"before_{version:04d}"
    older.mkdir()
    for entry in PROJECTION_MIGRATIONS.iterdir():
        if entry.name.endswith(".sql") and int(entry.name[:4]) < version:
            shutil.copyfile(str(entry), older / entry.name)
    await create_extensions(conn, SCHEMA)
    await migrate(conn, SCHEMA, older, PARAMS)
    await _use_schema(conn)


async def migrate_current(conn: AsyncConnection[Any]) -> list[str]:
    """Upgrade to every projection migration; return the names applied."""
    applied = await migrate(conn, SCHEMA, PROJECTION_MIGRATIONS, PARAMS)
    await _use_schema(conn)
    return applied
