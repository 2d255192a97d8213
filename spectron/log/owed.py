"""Owed writes: where each scope's last acknowledged write sits, and what a reader at a scope owes itself.

DESIGN rule 3 makes a strong read wait for the writes it must see. Those are the acknowledged
appends its scope can see, not the log's end: the end also holds events enrichment derived from
memories (vectors, facts, failures), queued behind the writes and owed to no reader (a memory whose
vector is not projected yet is matched by keyword and counted as pending), and other scopes' writes.
Both log adapters record, in the same Postgres, the offset after each scope's last write
(`spectron_log.scope_heads`); a reader asks for the heads of the scopes visible from its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from spectron.errors import InvalidInput
from spectron.events import EnrichmentFailed, Envelope, FactsExtracted, MemoryEmbedded
from spectron.records import Appended
from spectron.scope import Scope, ancestor_keys, scope_key

# derived from a memory by enrichment: owed to no reader
DERIVED = (MemoryEmbedded, FactsExtracted, EnrichmentFailed)
FLOOR = "*"  # a head every reader owes (scope unknown)
MAX_TOKEN_PARTITIONS = 1024
READ_AFTER_HEADER = "Spectron-Read-After"  # how HTTP clients pass their token on

_RECORD = """
INSERT INTO spectron_log.scope_heads AS h (scope_key, partition, scope, next_offset)
SELECT * FROM unnest(%s::text[], %s::int[], %s::jsonb[], %s::bigint[])
ON CONFLICT (scope_key, partition) DO UPDATE
SET next_offset = greatest(h.next_offset, EXCLUDED.next_offset)
"""
# DESIGN rule 1 on the heads: sub-scopes by containment, parent scopes by key, and the floor
_OWED = """
SELECT partition, max(next_offset) FROM spectron_log.scope_heads
WHERE scope @> %(scope)s OR scope_key = ANY(%(keys)s)
GROUP BY partition
"""
_ALL = "SELECT partition, max(next_offset) FROM spectron_log.scope_heads GROUP BY partition"

Head = tuple[str, int, Scope, int]  # scope key, partition, scope, offset after its last write


def written_heads(events: Sequence[Envelope], appended: Sequence[Appended]) -> list[Head]:
    """Per scope and partition, the offset after the batch's last write (derived events skipped)."""
    heads: dict[tuple[str, int], Head] = {}
    for event, ack in zip(events, appended, strict=True):
        if isinstance(event, DERIVED):
            continue
        where = (scope_key(event.scope), ack.position.partition)
        after = ack.position.offset + 1
        if where not in heads or heads[where][3] < after:
            heads[where] = (where[0], where[1], event.scope, after)
    return [heads[where] for where in sorted(heads)]  # one lock order for every appender


def floor_heads(appended: Sequence[Appended]) -> list[Head]:
    """Heads every reader owes: records whose scope is unknown (appended raw by another producer)."""
    return [(FLOOR, a.position.partition, {}, a.position.offset + 1) for a in appended]


async def record_heads(conn: AsyncConnection[Any], heads: Sequence[Head]) -> None:
    """Move the recorded heads forward (never back); call in the append's transaction if it has one."""
    if heads:
        await conn.execute(
            _RECORD,
            [
                [h[0] for h in heads],
                [h[1] for h in heads],
                [Jsonb(h[2]) for h in heads],
                [h[3] for h in heads],
            ],
        )


async def owed_offsets(conn: AsyncConnection[Any], scope: Scope | None) -> dict[int, int]:
    """Per partition, the offset after the last acknowledged write visible from `scope` (None: any)."""
    if scope is None:
        cur = await conn.execute(_ALL)
    else:
        keys = [*ancestor_keys(scope), FLOOR]
        cur = await conn.execute(_OWED, {"scope": Jsonb(scope), "keys": keys})
    return {int(p): int(n) for p, n in await cur.fetchall()}


def parse_token(token: str | None) -> dict[int, int]:
    """A read-your-writes token ('partition:offset,...', offsets of acknowledged writes) as heads."""
    if token is None or not token.strip():
        return {}
    heads: dict[int, int] = {}
    for part in token.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise InvalidInput(f"after must be 'partition:offset,...', got {token[:80]!r}")
        p, o = int(partition), int(offset)
        heads[p] = max(heads.get(p, 0), o + 1)
    if len(heads) > MAX_TOKEN_PARTITIONS:
        raise InvalidInput(f"after names more than {MAX_TOKEN_PARTITIONS} partitions")
    return heads


def format_token(written: Mapping[int, int]) -> str:
    """The token for acknowledged writes at these offsets (partition: last offset written)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(written.items()))
