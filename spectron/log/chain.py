"""Tamper evidence: each record's hash covers the previous record's hash in its partition.

hash(n) = SHA-256(hash(n-1) ‖ partition ‖ offset ‖ log time in µs ‖ key length ‖ key ‖ value), with
hash(-1) = 32 zero bytes. Altering, removing or reordering any record breaks every hash after it,
so a verifier that walks a partition names the first position where the chain does not hold.

The embedded log stores the two hashes in each record's row (`verify_partition`). On Kafka a
producer cannot know its predecessor's hash, so one chainer per partition links the records after
the fact and keeps the links beside the topic (`link_records`, `verify_links`; see
spectron.log.kafka_chain). Everything here is pure: the drivers only move records and positions.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spectron.errors import ChainGap
from spectron.records import RawRecord

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _canonical(
    partition: int, offset: int, recorded_at: datetime, key: bytes | None, value: bytes
) -> bytes:
    key_bytes = key or b""
    header = struct.pack(
        ">iqqi", partition, offset, _micros(recorded_at), -1 if key is None else len(key_bytes)
    )
    return header + key_bytes + value


def record_hash(
    prev: bytes, partition: int, offset: int, recorded_at: datetime, key: bytes | None, value: bytes
) -> bytes:
    """The chained hash of one record."""
    return hashlib.sha256(prev + _canonical(partition, offset, recorded_at, key, value)).digest()


def record_digest(record: RawRecord) -> bytes:
    """SHA-256 of one record's canonical serialisation alone (what a chain link says it saw)."""
    p, o = record.position
    return hashlib.sha256(_canonical(p, o, record.recorded_at, record.key, record.value)).digest()


@dataclass(frozen=True)
class ChainBreak:
    """Where and why a partition's chain does not hold."""

    partition: int
    offset: int
    reason: str


@dataclass(frozen=True)
class ChainedRecord:
    """What a verifier needs of a stored record."""

    offset: int
    recorded_at: datetime
    key: bytes | None
    value: bytes
    prev_hash: bytes
    hash: bytes


def verify_partition(
    partition: int, records: Iterable[ChainedRecord], head: ChainHead | None = None
) -> tuple[int, ChainBreak | None]:
    """Walk one partition in offset order; return records checked and the first break, if any.

    With the partition's recorded `head`, the walk must also end there: records deleted from the
    end leave an unbroken chain behind, only shorter.
    """
    expected_offset = 0
    prev = GENESIS
    checked = 0
    for record in records:
        if record.offset != expected_offset:
            return checked, ChainBreak(
                partition,
                expected_offset,
                f"offset {expected_offset} missing (next is {record.offset})",
            )
        if record.prev_hash != prev:
            return checked, ChainBreak(
                partition,
                record.offset,
                "previous-hash link broken (a record before it changed, moved or vanished)",
            )
        if (
            record_hash(
                prev, partition, record.offset, record.recorded_at, record.key, record.value
            )
            != record.hash
        ):
            return checked, ChainBreak(
                partition, record.offset, "record content does not match its hash"
            )
        prev = record.hash
        expected_offset += 1
        checked += 1
    if head is not None and expected_offset != head.next_offset:
        where = f"offsets {expected_offset} to {head.next_offset - 1} missing"
        if expected_offset > head.next_offset:
            where = f"records from offset {head.next_offset} on were never chained"
        return checked, ChainBreak(
            partition, expected_offset, f"{where}: the partition ends at {head.next_offset}"
        )
    if head is not None and prev != head.last_hash:
        return checked, ChainBreak(
            partition, expected_offset - 1, "the last record is not the partition's recorded head"
        )
    return checked, None


@dataclass(frozen=True)
class ChainLink:
    """A chainer's note about one record kept outside the log: its digest and its chained hash."""

    offset: int
    digest: bytes
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class ChainHead:
    """How far a partition is chained: the next offset to link and the last link's hash."""

    next_offset: int = 0
    last_hash: bytes = GENESIS


@dataclass
class ChainReport:
    """What verifying a log's chain found (spectron.log.ChainVerifier)."""

    checked: int = 0
    unchained: int = 0  # Kafka: records past a head, appended but not linked yet
    breaks: list[ChainBreak] = field(default_factory=list)
    heads: dict[int, ChainHead] = field(default_factory=dict)  # each partition's recorded head


def link_records(
    partition: int, head: ChainHead, records: Iterable[RawRecord]
) -> tuple[list[ChainLink], ChainHead]:
    """Link the records that follow `head` (earlier ones were linked already); the new head.

    Raises ChainGap when an offset is skipped: a chain must never vouch for a hole.
    """
    links: list[ChainLink] = []
    offset, prev = head.next_offset, head.last_hash
    for record in records:
        if record.position.offset < offset:
            continue  # a redelivery of what is linked already
        if record.position.offset != offset:
            raise ChainGap(
                f"partition {partition}: offset {offset} is next, got {record.position.offset}"
            )
        digest = record_digest(record)
        link_hash = record_hash(
            prev, partition, offset, record.recorded_at, record.key, record.value
        )
        links.append(ChainLink(offset, digest, prev, link_hash))
        offset, prev = offset + 1, link_hash
    return links, ChainHead(offset, prev)


def verify_links(
    partition: int, head: ChainHead, links: Iterable[ChainLink], records: Iterable[RawRecord]
) -> tuple[int, ChainBreak | None]:
    """Walk a partition's links and its records from offset 0 up to `head`, side by side.

    Returns the records checked and the first break: a record missing, altered, replaced or
    moved (its digest differs from the one linked), or links that were themselves edited. Records
    at or after the head are not linked yet and are not checked.
    """
    record_iter, link_iter = iter(records), iter(links)
    record, link = next(record_iter, None), next(link_iter, None)
    prev = GENESIS
    for offset in range(head.next_offset):
        reason = _link_fault(partition, offset, prev, record, link)
        if reason is not None:
            return offset, ChainBreak(partition, offset, reason)
        assert link is not None
        prev = link.hash
        record, link = next(record_iter, None), next(link_iter, None)
    if link is not None:
        return head.next_offset, ChainBreak(
            partition, link.offset, "a link beyond the chain's head"
        )
    if prev != head.last_hash:
        at = max(0, head.next_offset - 1)
        return head.next_offset, ChainBreak(
            partition, at, "the chain's head does not match its last link"
        )
    return head.next_offset, None


def _link_fault(
    partition: int, offset: int, prev: bytes, record: RawRecord | None, link: ChainLink | None
) -> str | None:
    """Why the record and link at `offset` do not hold, or None when they do."""
    if link is None or link.offset != offset:
        return "the chain has no link for this offset (a link was removed)"
    if record is not None and record.position.offset < offset:
        return f"the topic serves offset {record.position.offset} again, out of order"
    if record is None or record.position.offset != offset:
        after = "the topic ends" if record is None else f"next is {record.position.offset}"
        return f"offset {offset} missing from the topic ({after})"
    if link.prev_hash != prev:
        return "previous-hash link broken (a link before it changed or vanished)"
    matches_hash = link.hash == record_hash(
        prev, partition, offset, record.recorded_at, record.key, record.value
    )
    if record_digest(record) != link.digest:
        if matches_hash:
            return "link's digest was edited (the record still matches its hash)"
        return "record differs from the one chained (altered, replaced or moved)"
    if not matches_hash:
        return "link's hash was edited (the record still matches its digest)"
    return None
