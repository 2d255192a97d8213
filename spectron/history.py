"""History and audit: every value an attribute has had, and who appended what, citing the log."""

from __future__ import annotations

import heapq
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from itertools import groupby, takewhile
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict

from spectron.events import AnyEvent, LogPosition
from spectron.facts import name_key
from spectron.log import EventLog, MalformedEvent, RawRecord, decode_record
from spectron.recall import visibility_params, visible
from spectron.scope import Scope, is_visible, is_within
from spectron.sealing import envelope_of, unseal
from spectron.supersession import successors


class HistoryEntry(BaseModel):
    """One value an attribute held: who asserted it, when, in which event, and what replaced it."""

    model_config = ConfigDict(frozen=True)

    entity_type: str
    entity: str
    scope: dict[str, str]
    key: str
    value: str
    principal: str
    memory_id: uuid.UUID
    facts_event_id: uuid.UUID | None
    extractor: str
    recorded_at: datetime
    valid_from: datetime | None
    position: LogPosition
    superseded_by: str | None
    superseded_by_memory: uuid.UUID | None
    superseded_at: datetime | None


_HISTORY = f"""
SELECT e.type, e.name, e.scope, a.key, a.value, a.principal, a.memory_id, a.source_event,
       a.extractor, a.recorded_at, a.valid_from, a.partition, a."offset", s.value,
       a.superseded_by_memory, a.superseded_at, a.scope_key, a.cardinality
FROM attribute_values a
JOIN entities e USING (scope_key, type, name_key)
LEFT JOIN attribute_values s
  ON s.memory_id = a.superseded_by_memory AND s.ordinal = a.superseded_by_ordinal
WHERE {visible("e")} AND e.name_key = %(name)s AND (%(key)s::text IS NULL OR a.key = %(key)s)
  AND (%(as_of)s::timestamptz IS NULL OR coalesce(a.valid_from, a.recorded_at) <= %(as_of)s)
ORDER BY e.scope_key, e.type, a.key, a.recorded_at, a.partition, a."offset", a.ordinal
"""


async def attribute_history(
    conn: AsyncConnection[Any],
    scope: Scope,
    entity: str,
    key: str | None = None,
    as_of: datetime | None = None,
) -> list[HistoryEntry]:
    """Every value of an entity's attributes visible from `scope`, oldest first per chain.

    As of a past time, what superseded each value is derived from the values that existed then,
    by the projector's own rule (spectron.supersession), as `get_state` does: today's links may
    run through a value whose facts were logged after that time.
    """
    params = {**visibility_params(scope), "name": name_key(entity), "key": key, "as_of": as_of}
    cur = await conn.execute(_HISTORY, params)
    rows = await cur.fetchall()
    links: list[Link] = (
        [(row[13], row[14], row[15]) for row in rows] if as_of is None else _links_then(rows)
    )
    return [
        HistoryEntry(
            entity_type=row[0],
            entity=row[1],
            scope=row[2],
            key=row[3],
            value=row[4],
            principal=row[5],
            memory_id=row[6],
            facts_event_id=row[7],
            extractor=row[8],
            recorded_at=row[9],
            valid_from=row[10],
            position=LogPosition(row[11], row[12]),
            superseded_by=superseded_by,
            superseded_by_memory=by_memory,
            superseded_at=at,
        )
        for row, (superseded_by, by_memory, at) in zip(rows, links, strict=True)
    ]


# what superseded a value: (value, memory, log time), all None while it is current
Link = tuple[str | None, uuid.UUID | None, datetime | None]


def _links_then(rows: Sequence[Any]) -> list[Link]:
    """What superseded each row, among these rows alone."""
    links: list[Link] = [(None, None, None)] * len(rows)
    # a chain: one scope's values of one entity's key, single-valued, in log order (the query's)
    chains = groupby(enumerate(rows), key=lambda item: (item[1][16], item[1][0], item[1][3]))
    for _, members in chains:
        singles = [(i, row) for i, row in members if row[17] == "single"]
        for (i, _row), j in zip(singles, successors([row[4] for _, row in singles]), strict=True):
            if j is not None:
                newer = singles[j][1]
                links[i] = (newer[4], newer[6], newer[10] or newer[9])
    return links


class AuditRecord(BaseModel):
    """One event as an auditor sees it: what, who, where, when, and its position in the log."""

    model_config = ConfigDict(frozen=True)

    position: LogPosition
    recorded_at: datetime
    event_id: uuid.UUID | None
    type: str
    scope: dict[str, str]
    principal: str
    summary: str


async def audit_log(
    log: EventLog,
    pool: AsyncConnectionPool[Any],
    *,
    principal: str | None = None,
    scope: Scope | None = None,
    within: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AsyncIterator[AuditRecord]:
    """Events matching a principal, a scope (visible from it, or `within` it) and a time range.

    Forgotten memories are still listed, from their readable envelope: who, where and when stay
    auditable, only the content is gone.
    """
    for partition, end in sorted((await log.end_offsets()).items()):
        offset = await log.offset_for_time(partition, since) if since else 0
        while offset < end:
            batch = await log.read(partition, offset, 1000)
            if until is not None:  # a partition is in time order: the rest of it is later
                batch = list(takewhile(lambda record: record.recorded_at <= until, batch))
            if not batch:
                break
            async with pool.connection() as conn:
                batch = await unseal(conn, batch)
            for record in batch:
                found = _audit_record(record)
                if found is None:
                    continue
                if found.event_id is None:  # poison: no principal or scope to match
                    if principal is None and scope is None:
                        yield found
                    continue
                if principal is not None and found.principal != principal:
                    continue
                if scope is not None and not (
                    is_within(found.scope, scope) if within else is_visible(found.scope, scope)
                ):
                    continue
                yield found
            offset = batch[-1].position.offset + 1


def _audit_record(record: RawRecord) -> AuditRecord | None:
    at, when = record.position, record.recorded_at
    if record.forgotten:
        envelope = envelope_of(record)
        if envelope is None:
            return None
        return AuditRecord(position=at, recorded_at=when, summary="(content forgotten)", **envelope)
    try:
        event = decode_record(record).event
    except MalformedEvent as exc:
        return AuditRecord(
            position=at,
            recorded_at=when,
            event_id=None,
            type="(malformed)",
            scope={},
            principal="",
            summary=str(exc),
        )
    return AuditRecord(
        position=at,
        recorded_at=when,
        event_id=event.event_id,
        type=event.type,
        scope=event.scope,
        principal=event.principal,
        summary=_summary(event),
    )


def _summary(event: AnyEvent) -> str:
    payload: Any = event.payload
    for field in ("content", "summary", "reason"):
        text = getattr(payload, field, None)
        if isinstance(text, str):
            return text if len(text) <= 120 else text[:119] + "…"
    if hasattr(payload, "memory_id"):
        return f"for memory {payload.memory_id}"
    if hasattr(payload, "memory_ids"):
        return f"forgot {len(payload.memory_ids)} memories"
    if hasattr(payload, "entity_type"):
        return f"entity type {payload.entity_type.name}"
    return ""


class AuditPage(BaseModel):
    """The newest `limit` audit records matching a query, newest first, and how many matched."""

    model_config = ConfigDict(frozen=True)

    items: list[AuditRecord]
    matched: int
    truncated: bool


async def recent_audit(
    log: EventLog,
    pool: AsyncConnectionPool[Any],
    *,
    limit: int,
    principal: str | None = None,
    scope: Scope | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditPage:
    """The newest `limit` events visible from `scope` (by log time, then position), newest first.

    Reads the log from `since` (from the start without it), keeping only the newest in memory.
    """
    newest: list[tuple[datetime, int, int, AuditRecord]] = []
    matched = 0
    async for record in audit_log(
        log, pool, principal=principal, scope=scope, since=since, until=until
    ):
        if scope is not None and record.event_id is None:
            continue  # poison has no scope: not part of any scope's audit
        matched += 1
        entry = (record.recorded_at, record.position.partition, record.position.offset, record)
        if len(newest) < limit:
            heapq.heappush(newest, entry)
        elif entry[:3] > newest[0][:3]:
            heapq.heapreplace(newest, entry)
    items = [entry[3] for entry in sorted(newest, key=lambda e: e[:3], reverse=True)]
    return AuditPage(items=items, matched=matched, truncated=matched > len(items))
