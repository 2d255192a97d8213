"""Sealing: memory content in the log is ciphertext under a per-memory data key held outside it.

A memory's key (AES-256-GCM, random) lives in Postgres (`spectron_keys.data_keys`), never in the
log. Every event that carries a memory's content or something derived from it (MemoryRecorded,
ReflectionRecorded, MemoryEmbedded, FactsExtracted, EnrichmentFailed) is stored with its payload
sealed under that memory's key; the envelope (id, type, scope, principal, times) stays readable so
the log can be partitioned, audited and hash-chained. Forgetting destroys the key: the log keeps
its bytes and its chain, but the content is gone for good (crypto-shredding).

Sealed record value (since MemoryEmbedded v2): the envelope's JSON with `payload` replaced by
`"sealed": {"key": "<memory id>"}`, then NUL and the box (nonce ‖ ciphertext ‖ tag) as raw
bytes. Each id is stored once: a memory's own record says `"sealed": {}` (its key is its event
id), and a derived event's payload leaves out its `memory_id` (the key's id, restored on opening).
The plaintext in the box is the rest of the payload's JSON, followed for a vector by NUL and its
packed bytes (spectron.events BINARY_TAIL). The event id, type and memory id are authenticated as
associated data, so a box cannot be moved onto another event or memory.

Logs written before kept the box as base64 inside the JSON (`"sealed": {"key": ..., "box": ...}`,
the payload whole, event id and type authenticated); they open as they always did. Records
another producer wrote in plaintext pass through; a memory id with a destroyed key (or a
tombstone row) marks them forgotten as well.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import AsyncConnection

from spectron.db import KEYS_SCHEMA
from spectron.errors import ContentForgotten
from spectron.events import (
    BINARY_TAIL,
    EnrichmentFailed,
    Envelope,
    FactsExtracted,
    MemoryEmbedded,
    MemoryRecorded,
    ReflectionRecorded,
    encode_event,
    event_document,
    record_head,
)
from spectron.records import RawRecord
from spectron.scope import scope_key

# Projection batches hold it shared, forgetting holds it exclusively: a batch that read a key
# before it was destroyed has committed before the purge runs, so nothing it wrote survives.
FORGET_LOCK = 0x5BEC7_F0E
_CREATES = (MemoryRecorded, ReflectionRecorded)
_DERIVED = (MemoryEmbedded, FactsExtracted, EnrichmentFailed)
_CREATE_TYPES = frozenset(cls.__name__ for cls in _CREATES)
_DERIVED_TYPES = frozenset(cls.__name__ for cls in _DERIVED)


def sealing_key_id(event: Envelope) -> uuid.UUID | None:
    """The memory whose key seals this event, or None for events stored in plaintext."""
    if isinstance(event, _CREATES):
        return event.event_id
    if isinstance(event, _DERIVED):
        return event.payload.memory_id
    return None


def seal(event: Envelope, memory_id: uuid.UUID, key: bytes) -> bytes:
    """The record value of `event` with its payload encrypted under the memory's key."""
    document, tail = event_document(event)
    fields = document.pop("payload")
    if isinstance(event, _DERIVED):
        del fields["memory_id"]  # it is the key's id
    payload = orjson.dumps(fields)
    if tail is not None:
        payload += BINARY_TAIL + tail
    nonce = os.urandom(12)
    sealed_for = str(memory_id)
    box = nonce + AESGCM(key).encrypt(nonce, payload, _associated(document, sealed_for))
    document["sealed"] = {} if memory_id == event.event_id else {"key": sealed_for}
    return orjson.dumps(document) + BINARY_TAIL + box


def _associated(document: dict[str, Any], memory_id: str | None = None) -> bytes:
    """What a box authenticates besides its payload: the event (and, since v2, the memory) id."""
    event = f"{document.get('event_id')}:{document.get('type')}"
    return (event if memory_id is None else f"{event}:{memory_id}").encode()


def _sealed_for(document: dict[str, Any]) -> str:
    """The memory id a sealed record's key belongs to: named, or else the event's own."""
    return str(document["sealed"].get("key", document["event_id"]))


# One round trip: create new memories' keys (a redelivered memory keeps its first key: the no-op
# update makes the conflict return the stored row) and read the keys derived events need.
_CREATE_KEYS = f"""
INSERT INTO {KEYS_SCHEMA}.data_keys (memory_id, scope, scope_key, key) VALUES {{rows}}
ON CONFLICT (memory_id) DO UPDATE SET memory_id = EXCLUDED.memory_id
RETURNING memory_id, key
"""
_READ_KEYS = f"SELECT memory_id, key FROM {KEYS_SCHEMA}.data_keys WHERE memory_id = ANY(%s)"


def _keys_query(created: Sequence[Envelope], derived: set[uuid.UUID]) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    if created:
        parts.append(
            "WITH created AS ("
            + _CREATE_KEYS.format(rows=", ".join(["(%s, %s::jsonb, %s, %s)"] * len(created)))
            + ") SELECT memory_id, key FROM created"
        )
        for event in created:
            scope = orjson.dumps(event.scope).decode()
            params += [event.event_id, scope, scope_key(event.scope), os.urandom(32)]
    if derived:
        parts.append(_READ_KEYS)
        params.append(list(derived))
    return " UNION ALL ".join(parts), params


async def seal_events(conn: AsyncConnection[Any], events: Sequence[Envelope]) -> list[bytes]:
    """Record values for a batch: new memories get a fresh key, derived events use their memory's.

    Raises ContentForgotten for output of a forgotten memory (e.g. an enricher racing a forget).
    """
    created = [event for event in events if isinstance(event, _CREATES)]
    derived = {
        key_id
        for event in events
        if not isinstance(event, _CREATES) and (key_id := sealing_key_id(event)) is not None
    }
    keys: dict[uuid.UUID, bytes | None] = {}
    if created or derived:
        query, params = _keys_query(created, derived)
        cur = await conn.execute(query.encode(), params)
        for memory_id, key in await cur.fetchall():
            keys[memory_id] = bytes(key) if key is not None else None
    values = []
    for event in events:
        key_id = sealing_key_id(event)
        if key_id is None or key_id not in keys:
            # control events; or a memory another producer wrote in plaintext: so is its output
            values.append(encode_event(event))
            continue
        key = keys[key_id]
        if key is None:
            raise ContentForgotten(
                f"memory {key_id} is forgotten; {type(event).__name__} not appended"
            )
        values.append(seal(event, key_id, key))
    return values


async def _keys(
    conn: AsyncConnection[Any], memory_ids: set[uuid.UUID]
) -> dict[uuid.UUID, bytes | None]:
    """Key per memory id that has a row: bytes, or None once forgotten."""
    if not memory_ids:
        return {}
    cur = await conn.execute(_READ_KEYS, [list(memory_ids)])
    return {row[0]: (bytes(row[1]) if row[1] is not None else None) for row in await cur.fetchall()}


async def drop_forgotten(conn: AsyncConnection[Any], events: Sequence[Envelope]) -> list[Envelope]:
    """The events minus those deriving from a memory forgotten meanwhile (enrichment output)."""
    keys = await _keys(conn, {k for event in events if (k := sealing_key_id(event)) is not None})
    return [
        event
        for event in events
        if (key_id := sealing_key_id(event)) is None or keys.get(key_id, b"") is not None
    ]


def _head(value: bytes) -> dict[str, Any] | None:
    """A logged record's readable head (its envelope, sealed or not); None if it has none."""
    try:
        document = orjson.loads(record_head(value))
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def record_memory_id(value: bytes) -> uuid.UUID | None:
    """Which memory a logged record (sealed or not) belongs to, from its readable head."""
    document = _head(value)
    return None if document is None else _memory_id(document)


def _memory_id(document: dict[str, Any]) -> uuid.UUID | None:
    """Which memory a (sealed or plaintext) record belongs to, if it is about one."""
    try:
        if "sealed" in document:
            return uuid.UUID(_sealed_for(document))
        kind = document.get("type")
        if kind in _CREATE_TYPES:
            return uuid.UUID(document["event_id"])
        if kind in _DERIVED_TYPES:
            return uuid.UUID(document["payload"]["memory_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # malformed: decoding dead-letters it with the reason
    return None


async def unseal(
    conn: AsyncConnection[Any], records: Sequence[RawRecord], *, hold_forget_lock: bool = False
) -> list[RawRecord]:
    """Records with sealed payloads opened; those of forgotten memories marked `forgotten`.

    With `hold_forget_lock` (projection batches, inside their transaction) a concurrent forget
    waits until this transaction ends; see FORGET_LOCK.
    """
    if hold_forget_lock:
        await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", [FORGET_LOCK])
    documents: list[tuple[dict[str, Any] | None, uuid.UUID | None]] = []
    for record in records:
        document = _head(record.value)
        documents.append((document, None if document is None else _memory_id(document)))
    keys = await _keys(conn, {key_id for _, key_id in documents if key_id is not None})
    opened = []
    for record, (document, key_id) in zip(records, documents, strict=True):
        if document is None or key_id is None:
            opened.append(record)
            continue
        if key_id in keys and keys[key_id] is None:
            opened.append(dataclasses.replace(record, forgotten=True))
            continue
        if "sealed" not in document:
            opened.append(record)
            continue
        key = keys.get(key_id)
        if key is None:
            # no key row at all: sealed elsewhere, or the key store lost rows. Not a forget:
            # dead-letter it where `spectron dlq` shows it, rather than skip it silently
            fault = f"no data key for memory {key_id}: sealed elsewhere, or the key store lost it"
            opened.append(dataclasses.replace(record, fault=fault))
            continue
        opened.append(open_record(record, document, key))
    return opened


def open_record(record: RawRecord, document: dict[str, Any], key: bytes) -> RawRecord:
    """One sealed record opened with its memory's key (`document` is its decoded JSON head)."""
    memory_id = _sealed_for(document)
    sealed = document.pop("sealed")
    _, raw_box, box = record.value.partition(BINARY_TAIL)
    try:
        if raw_box:  # today's layout: the box follows the JSON as bytes
            associated = _associated(document, memory_id)
        else:  # written before MemoryEmbedded v2: base64 inside the JSON
            box, associated = base64.b64decode(sealed["box"], validate=True), _associated(document)
        plaintext = AESGCM(key).decrypt(box[:12], box[12:], associated)
    except (InvalidTag, ValueError, TypeError, KeyError) as exc:
        reason = "sealed payload does not authenticate under its memory's key"
        return dataclasses.replace(record, fault=f"{reason} ({type(exc).__name__})")
    payload, binary, tail = plaintext.partition(BINARY_TAIL)
    if raw_box and document.get("type") in _DERIVED_TYPES:
        # put back the memory id the sealer left out (it is the key's, authenticated above)
        rest = payload[1:].lstrip()
        restored = b'{"memory_id":"' + memory_id.encode() + b'"'
        payload = restored + (b"}" if rest == b"}" else b"," + rest)
    # splice the decrypted payload in as bytes: parsing and re-printing it here would double the
    # decoder's work (it parses the record right after); a vector stays the record's binary tail
    envelope = orjson.dumps(document)
    value = (
        envelope[:-1] + (b',"payload":' if len(envelope) > 2 else b'"payload":') + payload + b"}"
    )
    return dataclasses.replace(record, value=value + binary + tail)


def envelope_of(record: RawRecord) -> dict[str, Any] | None:
    """The readable envelope of a (forgotten) record: event id, type, scope, principal."""
    try:
        document = orjson.loads(record_head(record.value))
        return {
            "event_id": uuid.UUID(document["event_id"]),
            "type": str(document["type"]),
            "scope": dict(document["scope"]),
            "principal": str(document["principal"]),
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
