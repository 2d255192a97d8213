"""The extensions live in `public`: a rebuild that drops its schemas must never take them along."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from projectors.replay import swap_schemas
from spectron import db
from spectron.db import EXTENSIONS, PROJECTION_MIGRATIONS, create_extensions, prepare_database
from spectron.errors import StoreMisconfigured
from spectron.migrations import migrate

PARAMS = {"embedding_dim": 8}


async def _placement(conn: psycopg.AsyncConnection[Any]) -> dict[str, str]:
    cur = await conn.execute(
        "SELECT e.extname, n.nspname FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = ANY(%s)",
        [list(EXTENSIONS)],
    )
    return dict(await cur.fetchall())


async def test_extensions_are_created_in_public_whatever_the_search_path(database: str) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        # the role shares the projection schema's name: "$user" puts that schema first
        await conn.execute("CREATE SCHEMA spectron")
        await conn.execute("SET search_path TO spectron, public")
        await create_extensions(conn, "spectron")
        assert await _placement(conn) == {name: "public" for name in EXTENSIONS}


async def test_an_extension_left_in_a_projection_schema_moves_before_a_rebuild_drops_it(
    database: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute("CREATE SCHEMA spectron")
        await conn.execute("CREATE EXTENSION btree_gin SCHEMA spectron")  # an earlier version's
        await create_extensions(conn, "spectron")
        assert await _placement(conn) == {name: "public" for name in EXTENSIONS}

        await migrate(conn, "spectron", PROJECTION_MIGRATIONS, PARAMS)
        await migrate(conn, "spectron_build_1", PROJECTION_MIGRATIONS, PARAMS)
        await conn.set_autocommit(True)  # migrate leaves the connection in transaction mode
        # a blue-green rebuild: the live schema is retired, renamed, and dropped with CASCADE
        await swap_schemas(conn, "spectron", "spectron_build_1")
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'spectron'"
            " AND indexname = 'memories_scope_tsv'"
        )
        assert await cur.fetchall() == [("memories_scope_tsv",)]
        assert await _placement(conn) == {name: "public" for name in EXTENSIONS}


async def test_a_role_that_may_not_create_the_extensions_gets_a_typed_error(database: str) -> None:
    role = f"r_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute(f"CREATE ROLE {role} LOGIN")  # no CREATE on the database
        try:
            as_role = database.replace("postgres:@", f"{role}:@", 1)
            assert as_role != database
            with pytest.raises(StoreMisconfigured, match="CREATE EXTENSION vector SCHEMA public"):
                await prepare_database(as_role, "spectron", 8)
        finally:
            await conn.execute(f"DROP ROLE {role}")


async def test_an_extension_the_server_lacks_gets_a_typed_error(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "EXTENSIONS", ("no_such_extension",))
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        with pytest.raises(StoreMisconfigured, match="no_such_extension"):
            await create_extensions(conn, "spectron")
