"""Group commit in the embedded log: concurrent appends share transactions, never each other's fate."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from spectron.errors import ContentForgotten
from spectron.events import (
    MemoryEmbedded,
    MemoryEmbeddedPayload,
    MemoryRecorded,
    MemoryRecordedPayload,
    new_event_fields,
)
from tests.log_support import opened

SCOPE = {"org": "acme", "project": "group-commit"}


def memory(n: int) -> MemoryRecorded:
    """A memory in one of a few scopes, so a batch spans partitions."""
    scope = {**SCOPE, "agent": f"a{n % 5}"}
    return MemoryRecorded(
        **new_event_fields(scope, "agent:test"),
        payload=MemoryRecordedPayload(content=f"note {n} on group commit"),
    )


async def test_concurrent_appends_get_dense_offsets_and_a_bad_one_fails_alone(make_client) -> None:
    # no projectors in this process: the enricher would append to the same partitions meanwhile
    client = make_client(extractor="none", run_projectors=False)
    service = await client.service()
    async with client.sessions.create(scope=SCOPE) as s:
        gone = await s.remember("A memory that is forgotten at once.")
        await s.forget(gone.id)
    orphan = MemoryEmbedded(
        **new_event_fields(SCOPE, "system:enricher"),
        payload=MemoryEmbeddedPayload(memory_id=gone.id, model="m", vector=[0.0] * 3),
    )
    goods = [memory(n) for n in range(60)]
    before = await service.log.end_offsets()

    requests = [service.log.append([event]) for event in goods]
    requests.insert(30, service.log.append([orphan]))
    outcomes = await asyncio.gather(*requests, return_exceptions=True)

    assert isinstance(outcomes.pop(30), ContentForgotten)
    assert not any(isinstance(outcome, BaseException) for outcome in outcomes), outcomes
    offsets = defaultdict(list)
    for [appended] in outcomes:
        offsets[appended.position.partition].append(appended.position.offset)
    after = await service.log.end_offsets()
    for partition, taken in offsets.items():
        # every acknowledged append has its own offset, and nothing else was appended
        assert sorted(taken) == list(range(before[partition], after[partition]))
    for event, [appended] in zip(goods, outcomes, strict=True):
        records = await service.log.read(appended.position.partition, appended.position.offset, 1)
        [record] = await opened(service.pool, records)
        assert record.position == appended.position
        assert str(event.event_id).encode() in record.value
