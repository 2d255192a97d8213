"""A log holding every event type, for tests that compare projections built in different ways."""

from __future__ import annotations

from spectron.events import EnrichmentFailed, EnrichmentFailedPayload, new_event_fields
from spectron.maintenance import catch_up

SCOPE = {"org": "acme", "project": "fast-replay"}


async def fill_every_event_type(client) -> None:
    """Memories (embedded), explicit facts that supersede each other in and across scopes,
    multi values, relations, entity types (one redefined), reflections, an enrichment failure,
    poison records from another producer, and a forgotten memory."""
    service = await client.service()
    async with client.sessions.create(scope=SCOPE, principal="agent:a") as s:
        await s.register_entity_type({"name": "Customer", "triggers": ["client"]})
        await s.register_entity_type({"name": "Customer", "triggers": ["client", "account"]})
        for n, tier in enumerate(["free", "pro", "free", "enterprise", "pro"]):
            await s.remember(
                f"Initech moved to the {tier} tier (update {n}).",
                facts=[
                    {
                        "entity": {"type": "Customer", "name": "Initech"},
                        "key": "tier",
                        "value": tier,
                    },
                    {
                        "entity": {"type": "Customer", "name": "initech"},
                        "key": "tag",
                        "value": f"t{n % 2}",
                        "cardinality": "multi",
                    },
                    {
                        "subject": {"type": "Customer", "name": "Initech"},
                        "predicate": "referred_by",
                        "object": {"type": "Customer", "name": f"Acme {n}"},
                    },
                ],
            )
        first = await s.remember("Budget review is on Friday.", memory_category="episodic")
    async with client.sessions.create(scope={**SCOPE, "agent": "w1"}, principal="agent:b") as s:
        await s.remember(
            "Initech is on the pro tier, says w1.",
            facts=[
                {"entity": {"type": "Customer", "name": "Initech"}, "key": "tier", "value": "pro"}
            ],
        )
        await s.remember("Worker w1 found the cache bug.", metadata={"ticket": 7})
    await service.log.append(
        [
            EnrichmentFailed(
                **new_event_fields(SCOPE, "system:enricher"),
                payload=EnrichmentFailedPayload(
                    memory_id=first.id, enricher="extract:test", reason="malformed answer"
                ),
            )
        ]
    )
    for partition in (0, 1):
        await service.log.append_raw(partition, None, b"{not json")  # type: ignore[attr-defined]
    async with client.sessions.create(scope=SCOPE, principal="agent:c") as s:
        await s.reflect("Initech tier", persist=True)
        await s.remember("After the reflection.")
        # forgotten: its records are skipped on replay, and its tombstone purges nothing more
        forgotten = await s.remember(
            "Initech moved to the trial tier.",
            facts=[
                {"entity": {"type": "Customer", "name": "Initech"}, "key": "tier", "value": "trial"}
            ],
        )
        assert await catch_up(service) == 0
        await s.forget(forgotten.id)
    assert await catch_up(service) == 0
