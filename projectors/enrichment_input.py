"""Which log records an enrichment pass must open: memories and reflections, up to its batch.

A pass reads a window of records but enriches only the memories in it, up to its batch size.
Opening a sealed record (decryption, then decoding) is most of a pass's cost, so the records are
picked by the type in their readable envelope first and only those are opened: in a live log two
of every three records are derived events (vectors, facts) that no pass enriches.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from spectron.events import record_head
from spectron.log import RawRecord

ENRICHED_TYPES = frozenset({"MemoryRecorded", "ReflectionRecorded"})


def record_type(record: RawRecord) -> str | None:
    """The event type its envelope names; None when the record is not a readable envelope."""
    try:
        document = orjson.loads(record_head(record.value))
    except orjson.JSONDecodeError:
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else None


def enrichment_window(
    records: Sequence[RawRecord], batch_size: int
) -> tuple[list[RawRecord], int | None]:
    """The memory records to open (at most `batch_size`) and the offset of the last record passed.

    The window ends just before the memory that would overflow the batch, so the pass moves past
    every record it returns and none it leaves; None when it moves past nothing.
    """
    chosen: list[RawRecord] = []
    last: int | None = None
    for record in records:
        if record_type(record) in ENRICHED_TYPES:
            if len(chosen) == batch_size:
                break
            chosen.append(record)
        last = record.position.offset
    return chosen, last
