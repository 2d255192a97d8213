"""Versioned SQL migrations, applied in order at start; each schema records what it has applied."""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from psycopg import AsyncConnection, sql

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files(directory: Traversable) -> list[tuple[int, str, str]]:
    """(version, name, text) of every migration file in a package directory, in version order."""
    found = []
    for entry in directory.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(
    conn: AsyncConnection[Any],
    schema: str,
    directory: Traversable,
    params: dict[str, int] | None = None,
) -> list[str]:
    """Apply the pending migrations of `directory` to `schema`; return the names applied.

    Integer `params` fill `{{name}}` placeholders (DDL such as a vector dimension cannot be a bind
    parameter). Concurrent starters serialise on an advisory lock, so each file runs once.
    """
    applied: list[str] = []
    ident = sql.Identifier(schema)
    await conn.set_autocommit(False)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"spectron:{schema}"])
        await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        cur = await conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(ident)
        )
        row = await cur.fetchone()
        current = int(row[0]) if row else 0
        await conn.execute(sql.SQL("SET LOCAL search_path TO {}, public").format(ident))
        for version, name, text in migration_files(directory):
            if version <= current:
                continue
            for key, value in (params or {}).items():
                text = text.replace("{{" + key + "}}", str(int(value)))
            await conn.execute(text.encode())
            await conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    ident
                ),
                [version, name],
            )
            applied.append(name)
    return applied


LOG_MIGRATIONS = files("spectron.migrations") / "log"
KEY_MIGRATIONS = files("spectron.migrations") / "keys"
