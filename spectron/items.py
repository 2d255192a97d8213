"""Key-value items kept as memories: the projection side of `SpectronStore` (LangGraph).

An item is a memory whose metadata carries `{"spectron_item": {"key", "value", "since"}}` at the
item's scope. Putting a key again appends a new memory, so the log keeps every value and the
latest (log time, partition, offset) wins; deleting forgets (crypto-shreds) every memory of the key.
`since` is the position of the put that founded the item's namespace (None: this put did), which
lets a search list namespaces in the order they came into being, as LangGraph's stores do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.scope import Scope, scope_key

ITEM_FIELD = "spectron_item"
Position = tuple[datetime, int, int]  # log time, partition, offset: the order of "later wins"


@dataclass(frozen=True)
class ItemRow:
    """The current value of one key at one scope, and when it came to be."""

    memory_id: uuid.UUID
    scope: Scope
    key: str
    value: dict[str, Any]
    created: Position  # the oldest memory still holding this key
    updated: Position  # the memory holding the current value
    namespace_since: Position  # when the item's namespace last became non-empty


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


def _position(value: Any) -> Position | None:
    if not value:
        return None
    when, partition, offset = value
    return datetime.fromisoformat(when), int(partition), int(offset)


def position_json(position: Position) -> list[Any]:
    """A Position as JSON for `since`."""
    when, partition, offset = position
    return [when.isoformat(), partition, offset]


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
        created = (first_at, first_p, first_o)
        rows.append(
            ItemRow(
                memory_id=memory_id,
                scope=dict(scope),
                key=item_key,
                value=value,
                created=created,
                updated=(at, part, off),
                namespace_since=_position(since) or created,
            )
        )
    return rows


async def item_versions(
    conn: AsyncConnection[Any], scope: Scope, key: str
) -> list[tuple[uuid.UUID, dict[str, Any], Position]]:
    """Every value the key holds at exactly `scope` (forgotten ones are gone), oldest first."""
    cur = await conn.execute(_VERSIONS, {"exact": scope_key(scope), "key": key})
    return [(mid, value, (at, p, o)) for mid, value, at, p, o in await cur.fetchall()]


_SCOPES = f"""
SELECT DISTINCT m.scope FROM memories m
WHERE m.scope @> %(prefix)s AND jsonb_typeof(m.metadata->'{ITEM_FIELD}') = 'object'
"""


async def item_scopes(conn: AsyncConnection[Any], prefix: Scope) -> list[Scope]:
    """Every scope at or below `prefix` that holds at least one item."""
    cur = await conn.execute(_SCOPES, {"prefix": Jsonb(prefix)})
    return [dict(row[0]) for row in await cur.fetchall()]
