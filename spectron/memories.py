"""Listing memories for people: newest first with their log positions, a page at a time, or one by id.

Recall ranks by relevance; a person browsing a scope (or an auditor asking "what did we hold at T")
wants every visible memory in log order instead. Visibility is the same SQL fragment as recall's.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from spectron.errors import InvalidInput, MemoryNotFound
from spectron.recall import visibility_params, visible
from spectron.scope import Scope

MAX_PAGE = 500

_COLUMNS = """
m.memory_id, m.content, m.memory_category, m.metadata, m.scope, m.principal, m.recorded_at,
m.embedding IS NOT NULL AND (%(as_of)s::timestamptz IS NULL OR m.embedded_at <= %(as_of)s),
m.partition, m."offset"
"""
_FILTERS = f"""
{visible("m")}
AND (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
AND (%(category)s::text IS NULL OR m.memory_category = %(category)s)
AND (%(metadata)s::jsonb IS NULL OR m.metadata @> %(metadata)s)
"""
_PAGE = f"""
SELECT {_COLUMNS} FROM memories m
WHERE {_FILTERS}
  AND (%(after_time)s::timestamptz IS NULL
       OR (m.recorded_at, m.partition, m."offset")
          < (%(after_time)s::timestamptz, %(after_partition)s::int, %(after_offset)s::bigint))
ORDER BY m.recorded_at DESC, m.partition DESC, m."offset" DESC
LIMIT %(limit)s
"""
_ONE = f"""
SELECT {_COLUMNS} FROM memories m
WHERE m.memory_id = %(memory_id)s AND {visible("m")}
  AND (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
"""


class MemoryRecord(BaseModel):
    """One memory as stored: what it says, where and by whom, when and where the log put it."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    content: str
    memory_category: str
    metadata: dict[str, Any]
    scope: dict[str, str]
    principal: str
    recorded_at: datetime
    partition: int
    offset: int
    embedded: bool = Field(description="False while its vector is not projected (yet).")


class MemoryPage(BaseModel):
    """A page of memories, newest first; pass `next_cursor` back for the next (older) page."""

    model_config = ConfigDict(frozen=True)

    items: list[MemoryRecord]
    next_cursor: str | None = Field(description="Null on the last page.")


def _record(row: tuple[Any, ...]) -> MemoryRecord:
    memory_id, content, category, metadata, scope, principal, at, embedded, part, off = row
    return MemoryRecord(
        id=memory_id,
        content=content,
        memory_category=category,
        metadata=metadata,
        scope=scope,
        principal=principal,
        recorded_at=at,
        partition=part,
        offset=off,
        embedded=bool(embedded),
    )


def cursor_of(record: MemoryRecord) -> str:
    """The cursor that continues a listing after `record`: its log time and position."""
    return f"{record.recorded_at.isoformat()}~{record.partition}~{record.offset}"


def parse_cursor(cursor: str | None) -> tuple[datetime | None, int | None, int | None]:
    """A cursor's (time, partition, offset); raise InvalidInput for text no listing produced."""
    if cursor is None:
        return None, None, None
    try:
        at, partition, offset = cursor.split("~")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("no time zone")
        return when, int(partition), int(offset)
    except ValueError:
        raise InvalidInput(f"cursor {cursor!r} is not one a listing returned") from None


async def list_memories(
    conn: AsyncConnection[Any],
    scope: Scope,
    *,
    limit: int = 50,
    cursor: str | None = None,
    memory_category: str | None = None,
    metadata: dict[str, Any] | None = None,
    as_of: datetime | None = None,
) -> MemoryPage:
    """Memories visible from `scope` (as of a log time), newest first, `limit` per page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE}")
    after_time, after_partition, after_offset = parse_cursor(cursor)
    params = {
        **visibility_params(scope),
        "as_of": as_of,
        "category": memory_category,
        "metadata": Jsonb(metadata) if metadata else None,
        "after_time": after_time,
        "after_partition": after_partition,
        "after_offset": after_offset,
        "limit": limit + 1,
    }
    cur = await conn.execute(_PAGE, params)
    records = [_record(row) for row in await cur.fetchall()]
    more = len(records) > limit
    records = records[:limit]
    return MemoryPage(items=records, next_cursor=cursor_of(records[-1]) if more else None)


async def get_memory(
    conn: AsyncConnection[Any], scope: Scope, memory_id: Any, as_of: datetime | None = None
) -> MemoryRecord:
    """One memory visible from `scope`; MemoryNotFound if unknown, forgotten, invisible or later."""
    try:
        parsed = memory_id if isinstance(memory_id, uuid.UUID) else uuid.UUID(str(memory_id))
    except ValueError:
        raise MemoryNotFound(f"no memory {memory_id!r}: not a memory id") from None
    params = {**visibility_params(scope), "memory_id": parsed, "as_of": as_of}
    cur = await conn.execute(_ONE, params)
    row = await cur.fetchone()
    if row is None:
        raise MemoryNotFound(f"no memory {parsed} visible from {scope}")
    return _record(row)
