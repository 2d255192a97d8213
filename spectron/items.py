"""Key-value items kept as memories: the read side of `SpectronStore` (LangGraph), in-process or
behind the HTTP routes of spectron/http/routes/items.py.

An item is a memory whose metadata carries `{"spectron_item": {"key", "value", "since"}}` at the
item's scope. Putting a key again appends a new memory, so the log keeps every value and the
latest (log time, partition, offset) wins; deleting forgets (crypto-shreds) every memory of the key.
`since` is the position of the put that founded the item's namespace (None: this put did), which
lets a search list namespaces in the order they came into being, as LangGraph's stores do.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from spectron.asof import AsOf, resolve_as_of
from spectron.consistency import wait_for_projections
from spectron.scope import Scope, canonical_scope, scope_key
from spectron.service import MemoryService
from spectron.validation import check_storable

ITEM_FIELD = "spectron_item"
MAX_KEY_CHARS = 1000  # an item key in an HTTP route's filter


class ItemPosition(BaseModel):
    """Where a memory sits in the log: the order of "the later write wins"."""

    model_config = ConfigDict(frozen=True)

    recorded_at: datetime
    partition: int
    offset: int

    @property
    def order(self) -> tuple[datetime, int, int]:
        """A sort key: log time, then partition and offset."""
        return (self.recorded_at, self.partition, self.offset)


class ItemRow(BaseModel):
    """The current value of one key at one scope, and when it came to be."""

    model_config = ConfigDict(frozen=True)

    memory_id: uuid.UUID
    scope: dict[str, str]
    key: str
    value: dict[str, Any]
    created: ItemPosition  # the oldest memory still holding this key
    updated: ItemPosition  # the memory holding the current value
    namespace_since: ItemPosition  # when the item's namespace last became non-empty


class ItemVersion(BaseModel):
    """One value a key held, and where."""

    model_config = ConfigDict(frozen=True)

    memory_id: uuid.UUID
    value: dict[str, Any]
    at: ItemPosition


_ROWS = f"""
SELECT memory_id, scope, item->>'key', item->'value', item->'since',
       recorded_at, partition, "offset", first_at, first_partition, first_offset
FROM (
  SELECT m.memory_id, m.scope, m.metadata->'{ITEM_FIELD}' AS item, m.recorded_at, m.partition,
         m."offset",
         row_number() OVER (PARTITION BY m.scope_key, m.metadata->'{ITEM_FIELD}'->>'key'
                            ORDER BY m.recorded_at DESC, m.partition DESC, m."offset" DESC) AS rank,
         first_value(m.recorded_at) OVER oldest AS first_at,
         first_value(m.partition) OVER oldest AS first_partition,
         first_value(m."offset") OVER oldest AS first_offset
  FROM memories m
  WHERE m.scope @> %(prefix)s AND jsonb_typeof(m.metadata->'{ITEM_FIELD}') = 'object'
    AND (%(key)s::text IS NULL OR m.metadata->'{ITEM_FIELD}'->>'key' = %(key)s)
    AND (%(exact)s::text IS NULL OR m.scope_key = %(exact)s)
    AND (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
  WINDOW oldest AS (PARTITION BY m.scope_key, m.metadata->'{ITEM_FIELD}'->>'key'
                    ORDER BY m.recorded_at, m.partition, m."offset")
) x
WHERE rank = 1
"""

_VERSIONS = f"""
SELECT m.memory_id, m.metadata->'{ITEM_FIELD}'->'value', m.recorded_at, m.partition, m."offset"
FROM memories m
WHERE m.scope_key = %(exact)s AND jsonb_typeof(m.metadata->'{ITEM_FIELD}') = 'object'
  AND m.metadata->'{ITEM_FIELD}'->>'key' = %(key)s
ORDER BY m.recorded_at, m.partition, m."offset"
"""

_SCOPES = f"""
SELECT DISTINCT m.scope FROM memories m
WHERE m.scope @> %(prefix)s AND jsonb_typeof(m.metadata->'{ITEM_FIELD}') = 'object'
"""


def _position(at: datetime, partition: int, offset: int) -> ItemPosition:
    return ItemPosition(recorded_at=at, partition=partition, offset=offset)


def since_json(position: ItemPosition) -> list[Any]:
    """A position as the JSON kept in an item's `since`."""
    return [position.recorded_at.isoformat(), position.partition, position.offset]


def _since(value: Any) -> ItemPosition | None:
    if not value:
        return None
    when, partition, offset = value
    return _position(datetime.fromisoformat(when), int(partition), int(offset))


async def current_items(
    conn: AsyncConnection[Any],
    prefix: Scope,
    *,
    key: str | None = None,
    exact: bool = False,
    as_of: datetime | None = None,
) -> list[ItemRow]:
    """The current items at `prefix` (exact) or at and below it, as of a log time."""
    params = {
        "prefix": Jsonb(prefix),
        "key": key,
        "exact": scope_key(prefix) if exact else None,
        "as_of": as_of,
    }
    cur = await conn.execute(_ROWS, params)
    rows = []
    for (
        memory_id,
        scope,
        item_key,
        value,
        since,
        at,
        part,
        off,
        first_at,
        first_p,
        first_o,
    ) in await cur.fetchall():
        created = _position(first_at, first_p, first_o)
        rows.append(
            ItemRow(
                memory_id=memory_id,
                scope=dict(scope),
                key=item_key,
                value=value,
                created=created,
                updated=_position(at, part, off),
                namespace_since=_since(since) or created,
            )
        )
    return rows


async def caught_up(service: MemoryService, bound: float) -> None:
    """Read your writes: wait until the projections hold everything appended so far."""
    heads = await service.log.end_offsets()
    await wait_for_projections(service.pool, heads, None, bound, awaiting=None)


async def read_items(
    service: MemoryService,
    prefix: Scope,
    *,
    key: str | None = None,
    exact: bool = False,
    as_of: AsOf = None,
    bound: float,
) -> list[ItemRow]:
    """current_items, once the projections have caught up with the log."""
    prefix = canonical_scope(prefix)
    if key is not None:
        check_storable(key, "key")  # only that: any other key may have been put
    at = await resolve_as_of(as_of, service.log)
    await caught_up(service, bound)
    async with service.pool.connection() as conn:
        return await current_items(conn, prefix, key=key, exact=exact, as_of=at)


async def read_versions(
    service: MemoryService, scope: Scope, key: str, *, bound: float
) -> list[ItemVersion]:
    """Every value the key holds at exactly `scope` (forgotten ones are gone), oldest first."""
    check_storable(key, "key")
    await caught_up(service, bound)
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            _VERSIONS, {"exact": scope_key(canonical_scope(scope)), "key": key}
        )
        rows = await cur.fetchall()
    return [
        ItemVersion(memory_id=mid, value=value, at=_position(at, p, o))
        for mid, value, at, p, o in rows
    ]


async def read_scopes(service: MemoryService, prefix: Scope, *, bound: float) -> list[Scope]:
    """Every scope at or below `prefix` that holds at least one item."""
    await caught_up(service, bound)
    async with service.pool.connection() as conn:
        cur = await conn.execute(_SCOPES, {"prefix": Jsonb(canonical_scope(prefix))})
        return [dict(row[0]) for row in await cur.fetchall()]
