"""Bulk-load the log as fast as it accepts appends, then time the projectors settling it.

The scale points (100k, 1M) are reached this way: `remember` from 8 agents measures the append
path (a fixed sample at each size), while filling a store to 1M through it would take hours on 2
cores without saying more. The memories are the speed benchmark's (same scope tree and texts);
enrichment embeds them afterwards, as it would a backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from benchmarks.workload import ScopeTree, TextGenerator
from spectron import SpectronClient
from spectron.events import Envelope, MemoryRecorded, MemoryRecordedPayload, new_event_fields

BATCH = 1_000  # memories per append (one transaction)
IN_FLIGHT = 2  # appends under way at once: one is built in Python while the other commits


def memory_batch(
    tree: ScopeTree, text: TextGenerator, indexes: range, principal: str = "agent:bulk"
) -> list[Envelope]:
    """MemoryRecorded events for `indexes`, as `remember` would append them."""
    return [
        MemoryRecorded(
            **new_event_fields(tree.scope_for(index), principal),
            payload=MemoryRecordedPayload(content=text.memory(index), metadata={"i": index}),
        )
        for index in indexes
    ]


async def bulk_append(
    writer: SpectronClient,
    tree: ScopeTree,
    text: TextGenerator,
    take: Callable[[int], range],
    count: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Append `count` memories in batches (`take(n)` hands out the next n indexes); the rate."""
    service = await writer.service()
    left = count
    appended = 0

    async def appender() -> None:
        nonlocal left, appended
        while left > 0:
            size = min(BATCH, left)
            left -= size
            indexes = take(size)
            await service.log.append(memory_batch(tree, text, indexes))
            appended += size
            if progress is not None:
                progress(appended)

    started = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(IN_FLIGHT)))
    seconds = time.perf_counter() - started
    return {
        "memories": count,
        "batch": BATCH,
        "seconds": round(seconds, 3),
        "appends_per_second": round(count / seconds, 1) if seconds else None,
    }
