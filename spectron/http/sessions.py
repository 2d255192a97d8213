"""Server-side sessions: a scope bound to the API key that opened it, kept in `spectron_auth.sessions`.

A session idles out after `SessionPolicy.idle_seconds` without a request, and a key holds at most
`SessionPolicy.per_key` open sessions, so the table stays bounded however clients behave.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.errors import SessionNotFound, TooManySessions
from spectron.http.keys import AUTH_SCHEMA, ApiKey
from spectron.scope import Scope

if TYPE_CHECKING:
    from spectron.calls import Call
    from spectron.service import MemoryService

R = TypeVar("R")

# a session's last use is written back at most this often, not on every request
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    """How long an unused session lives and how many one key may hold open."""

    idle_seconds: float = 24 * 3600.0
    per_key: int = 1000

    @property
    def idle(self) -> timedelta:
        """The idle lifetime as an interval."""
        return timedelta(seconds=self.idle_seconds)


@dataclass(frozen=True)
class OpenSession:
    """A session as a request sees it: its id, its scope and the key using it."""

    session_id: uuid.UUID
    scope: Scope
    key: ApiKey

    async def run(self, service: MemoryService, call: Call[R]) -> R:
        """Do `call` on `service` at the session's scope, for the key's principal."""
        return await call.run(service, self.scope, self.key.principal)


async def open_session(
    conn: AsyncConnection[Any], key: ApiKey, scope: Scope, policy: SessionPolicy
) -> OpenSession:
    """Record a session at `scope` (already checked against the key's floor), within the key's cap."""
    session_id = uuid.uuid4()
    async with conn.transaction():
        # one opener per key at a time, so concurrent opens cannot overshoot the cap
        await conn.execute(
            f"SELECT 1 FROM {AUTH_SCHEMA}.api_keys WHERE key_id = %s FOR UPDATE", [key.key_id]
        )
        await conn.execute(
            f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE last_used_at < now() - %s", [policy.idle]
        )
        cur = await conn.execute(
            f"SELECT count(*) FROM {AUTH_SCHEMA}.sessions WHERE key_id = %s", [key.key_id]
        )
        row = await cur.fetchone()
        if row is not None and row[0] >= policy.per_key:
            raise TooManySessions(
                f"API key {key.key_id} already holds {row[0]} open sessions (at most"
                f" {policy.per_key}): close sessions with DELETE /v1/sessions/{{id}}, or wait"
                f" for idle ones to expire after {policy.idle_seconds:g} s"
            )
        await conn.execute(
            f"INSERT INTO {AUTH_SCHEMA}.sessions (session_id, key_id, scope) VALUES (%s, %s, %s)",
            [session_id, key.key_id, Jsonb(scope)],
        )
    return OpenSession(session_id, scope, key)


async def find_session(
    conn: AsyncConnection[Any], session_id: str, key: ApiKey, policy: SessionPolicy
) -> OpenSession:
    """The key's open, unexpired session with that id; another key's session is not found."""
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        raise SessionNotFound(f"no open session {session_id!r}") from None
    cur = await conn.execute(
        f"SELECT scope, now() - last_used_at FROM {AUTH_SCHEMA}.sessions"
        " WHERE session_id = %s AND key_id = %s",
        [parsed, key.key_id],
    )
    row = await cur.fetchone()
    if row is None:
        raise SessionNotFound(f"no open session {session_id!r} for this API key")
    scope, idle_for = row
    if idle_for > policy.idle:
        await conn.execute(f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE session_id = %s", [parsed])
        await conn.commit()  # the pool rolls back when the error below leaves its block
        raise SessionNotFound(
            f"session {session_id!r} expired after {policy.idle_seconds:g} s unused: open a new one"
        )
    if idle_for > TOUCH_EVERY:
        await conn.execute(
            f"UPDATE {AUTH_SCHEMA}.sessions SET last_used_at = now() WHERE session_id = %s",
            [parsed],
        )
    return OpenSession(parsed, dict(scope), key)


async def close_session(conn: AsyncConnection[Any], session: OpenSession) -> None:
    """Forget the session; its memories stay."""
    await conn.execute(
        f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE session_id = %s", [session.session_id]
    )
