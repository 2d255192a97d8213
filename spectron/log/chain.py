"""Tamper evidence: each record's hash covers the previous record's hash in its partition.

hash(n) = SHA-256(hash(n-1) ‖ partition ‖ offset ‖ log time in µs ‖ key length ‖ key ‖ value), with
hash(-1) = 32 zero bytes. Altering, removing or reordering any record breaks every hash after it,
so a verifier that walks a partition names the first position where the chain does not hold.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

GENESIS = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def record_hash(
    prev: bytes, partition: int, offset: int, recorded_at: datetime, key: bytes | None, value: bytes
) -> bytes:
    """The chained hash of one record."""
    key_bytes = key or b""
    header = struct.pack(
        ">iqqi", partition, offset, _micros(recorded_at), -1 if key is None else len(key_bytes)
    )
    return hashlib.sha256(prev + header + key_bytes + value).digest()


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
    partition: int, records: Iterable[ChainedRecord]
) -> tuple[int, ChainBreak | None]:
    """Walk one partition in offset order; return records checked and the first break, if any."""
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
    return checked, None
