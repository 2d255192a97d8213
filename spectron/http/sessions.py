"""Server-side sessions: a scope bound to the API key that opened it, kept in `spectron_auth.sessions`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.http.keys import AUTH_SCHEMA, ApiKey
from spectron.http.problems import SessionNotFound
from spectron.scope import Scope


@dataclass(frozen=True)
class OpenSession:
    """A session as a request sees it: its id, its scope and the key using it."""

    session_id: uuid.UUID
    scope: Scope
    key: ApiKey


async def open_session(conn: AsyncConnection[Any], key: ApiKey, scope: Scope) -> OpenSession:
    """Record a session at `scope` (already checked against the key's floor)."""
    session_id = uuid.uuid4()
    await conn.execute(
        f"INSERT INTO {AUTH_SCHEMA}.sessions (session_id, key_id, scope) VALUES (%s, %s, %s)",
        [session_id, key.key_id, Jsonb(scope)],
    )
    return OpenSession(session_id, scope, key)


async def find_session(conn: AsyncConnection[Any], session_id: str, key: ApiKey) -> OpenSession:
    """The key's open session with that id; another key's session is reported as not found."""
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        raise SessionNotFound(f"no open session {session_id!r}") from None
    cur = await conn.execute(
        f"SELECT scope FROM {AUTH_SCHEMA}.sessions WHERE session_id = %s AND key_id = %s",
        [parsed, key.key_id],
    )
    row = await cur.fetchone()
    if row is None:
        raise SessionNotFound(f"no open session {session_id!r} for this API key")
    return OpenSession(parsed, dict(row[0]), key)


async def close_session(conn: AsyncConnection[Any], session: OpenSession) -> None:
    """Forget the session; its memories stay."""
    await conn.execute(
        f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE session_id = %s", [session.session_id]
    )
