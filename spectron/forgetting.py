"""Forgetting on an immutable log: destroy the memories' keys, purge projections, log a tombstone.

What is erased: the content of each forgotten memory and everything derived from it (vector,
extracted facts, enrichment failure reasons) becomes unreadable in the log, because it was only
ever stored there sealed under the memory's own key and that key is destroyed; the projections
lose every row of it (recall, entities, attribute chains are relinked, relations, reflections).
What stays: each record's envelope (event id, type, scope, principal, times) and the hash chain,
so audit and `log verify` still work; the tombstone event naming the forgotten ids; persisted
reflections that cited a forgotten memory (they are the reflecting agent's own memory: they are
reported, and can be forgotten in turn). Physically, Postgres keeps deleted row versions until
VACUUM reclaims them and WAL segments until they are recycled; `spectron forget` reports this.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spectron.db import KEYS_SCHEMA
from spectron.errors import InvalidInput, MemoryNotFound
from spectron.events import (
    MAX_FORGOTTEN_PER_EVENT,
    MemoriesForgotten,
    MemoriesForgottenPayload,
    new_event_fields,
)
from spectron.scope import Scope, is_within
from spectron.sealing import FORGET_LOCK
from spectron.validation import check_category, check_metadata, check_text

# removes forgotten memories and what derives from them from the projections
# (projectors.forgetting.purge_memories, handed in by the service)
Purge = Callable[[AsyncCursor[Any], Sequence[uuid.UUID]], Awaitable[object]]


WITHHELD = "<withheld>"


class ForgetFilter(BaseModel):
    """`where` of forget(scope=..., where=...): which memories of the scope to forget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_category: str | list[str] | None = None
    principal: str | None = None
    metadata: dict[str, Any] | None = Field(default=None, description="Containment match.")
    before: datetime | None = Field(default=None, description="Logged before this time.")
    after: datetime | None = Field(default=None, description="Logged at or after this time.")

    @field_validator("memory_category")
    @classmethod
    def _known_categories(cls, value: str | list[str] | None) -> str | list[str] | None:
        for category in [value] if isinstance(value, str) else value or []:
            check_category(category)
        return value

    @field_validator("principal")
    @classmethod
    def _storable_principal(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value, "principal", 200)

    @field_validator("metadata")
    @classmethod
    def _storable_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_metadata(value)

    @field_validator("before", "after")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        # a time without a zone would be read in the database server's zone: hours off
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-11-20T10:00:00Z)")
        return value


class ForgetResult(BaseModel):
    """What forget did: the memories erased, the tombstones appended, reflections citing them."""

    model_config = ConfigDict(frozen=True)

    forgotten: list[uuid.UUID]
    tombstones: list[uuid.UUID]
    citing_reflections: list[uuid.UUID]

    @property
    def count(self) -> int:
        """How many memories were forgotten."""
        return len(self.forgotten)


def logged_filter(condition: ForgetFilter) -> dict[str, Any]:
    """The filter as the tombstone logs it, for good: metadata values withheld, since the log
    keeps the tombstone in the clear and a value may be what is being forgotten (an email)."""
    logged = condition.model_dump(mode="json", exclude_none=True)
    if condition.metadata is not None:
        logged["metadata"] = dict.fromkeys(sorted(condition.metadata), WITHHELD)
    return logged


def parse_filter(where: Any) -> ForgetFilter | None:
    """Validate `where`; a typo must not silently widen what is forgotten."""
    if where is None:
        return None
    if isinstance(where, ForgetFilter):
        return where
    try:
        return ForgetFilter.model_validate(where)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "where"
        raise InvalidInput(f"invalid forget filter: {field}: {first['msg']}") from exc


async def select_memory(
    conn: AsyncConnection[Any], session_scope: Scope, memory_id: Any
) -> list[uuid.UUID]:
    """The one memory to forget (none if it already is); it must be at or below the session's scope."""
    try:
        wanted = memory_id if isinstance(memory_id, uuid.UUID) else uuid.UUID(str(memory_id))
    except ValueError as exc:
        raise InvalidInput(f"memory_id {memory_id!r} is not a UUID") from exc
    cur = await conn.execute(
        f"SELECT scope, key IS NULL FROM {KEYS_SCHEMA}.data_keys WHERE memory_id = %s"
        " UNION ALL SELECT scope, false FROM memories WHERE memory_id = %s LIMIT 1",
        [wanted, wanted],
    )
    row = await cur.fetchone()
    if row is None or not is_within(dict(row[0]), session_scope):
        # a parent's or sibling's memory is reported like a missing one: nothing leaks
        raise MemoryNotFound(f"no memory {wanted} at or below this scope")
    return [] if row[1] else [wanted]


async def select_scope(
    conn: AsyncConnection[Any], target: Scope, where: ForgetFilter | None
) -> list[uuid.UUID]:
    """Memories at or below `target` (matching `where`): from the keys too, so unprojected ones count."""
    if where is None:
        cur = await conn.execute(
            f"SELECT memory_id FROM {KEYS_SCHEMA}.data_keys WHERE scope @> %s AND key IS NOT NULL"
            " UNION SELECT memory_id FROM memories WHERE scope @> %s ORDER BY 1",
            [Jsonb(target), Jsonb(target)],
        )
        return [row[0] for row in await cur.fetchall()]
    clauses = ["scope @> %s"]
    params: list[Any] = [Jsonb(target)]
    if where.memory_category is not None:
        categories = (
            [where.memory_category]
            if isinstance(where.memory_category, str)
            else where.memory_category
        )
        clauses.append("memory_category = ANY(%s)")
        params.append(categories)
    if where.principal is not None:
        clauses.append("principal = %s")
        params.append(where.principal)
    if where.metadata is not None:
        clauses.append("metadata @> %s")
        params.append(Jsonb(where.metadata))
    if where.before is not None:
        clauses.append("recorded_at < %s")
        params.append(where.before)
    if where.after is not None:
        clauses.append("recorded_at >= %s")
        params.append(where.after)
    query = f"SELECT memory_id FROM memories WHERE {' AND '.join(clauses)} ORDER BY memory_id"
    cur = await conn.execute(query.encode(), params)
    return [row[0] for row in await cur.fetchall()]


async def shred(
    conn: AsyncConnection[Any], memory_ids: Sequence[uuid.UUID], purge: Purge
) -> list[uuid.UUID]:
    """In the caller's transaction: destroy the keys and `purge` the projections; return citing reflections.

    Memories another producer wrote in plaintext have no key: a keyless tombstone row marks them
    forgotten, so replay passes over them as over the shredded ones.
    """
    ids = list(memory_ids)
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", [FORGET_LOCK])
    await conn.execute(
        f"UPDATE {KEYS_SCHEMA}.data_keys SET key = NULL, forgotten_at = now()"
        " WHERE memory_id = ANY(%s) AND key IS NOT NULL",
        [ids],
    )
    await conn.execute(
        f"INSERT INTO {KEYS_SCHEMA}.data_keys (memory_id, scope, scope_key, key, forgotten_at)"
        " SELECT memory_id, scope, scope_key, NULL, now() FROM memories"
        " WHERE memory_id = ANY(%s) ON CONFLICT (memory_id) DO NOTHING",
        [ids],
    )
    async with conn.cursor() as cur:
        await purge(cur, ids)
        await cur.execute(
            "SELECT reflection_id FROM reflections WHERE sources && %s ORDER BY reflection_id",
            [ids],
        )
        return [row[0] for row in await cur.fetchall()]


def tombstones(
    scope: Scope,
    principal: str,
    memory_ids: Sequence[uuid.UUID],
    selector: dict[str, Any],
    reason: str | None,
) -> list[MemoriesForgotten]:
    """The MemoriesForgotten events recording a forget, at most 1,000 ids each."""
    return [
        MemoriesForgotten(
            **new_event_fields(scope, principal),
            payload=MemoriesForgottenPayload(
                memory_ids=list(memory_ids[start : start + MAX_FORGOTTEN_PER_EVENT]),
                selector=selector,
                reason=reason,
            ),
        )
        for start in range(0, len(memory_ids), MAX_FORGOTTEN_PER_EVENT)
    ]
