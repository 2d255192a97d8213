"""Entities, attributes and relations with supersession chains (issue 3), on the embedded log."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projectors.driver import apply_records
from projectors.enrichment import registered_types
from projectors.replay import reset_projection
from projectors.vector_index import move_all_staged
from spectron import InvalidInput
from spectron.facts import EntityType
from spectron.maintenance import catch_up, rebuild, state_hash
from tests.seed_support import conflicts

SHARED = {"org": "acme", "project": "market-research-q3"}


async def test_seed_enterprise_example(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember(
            content="The enterprise customer segment prioritises SOC2 compliance over cost."
        )
        state = await s.get_state(scope=SHARED)
    segment = state.entity("CustomerSegment", "enterprise")
    assert segment is not None
    assert segment.current["top_priority"] == "SOC2 compliance"
    assert [(r.subject, r.predicate, r.object) for r in segment.relations] == [
        ("enterprise", "values", "compliance_features")
    ]
    assert state.pending == 0


async def test_seed_pricing_conflict_two_agents(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED, principal="agent:a") as a:
        await a.remember("Competitor X's Pro tier costs $299/mo.")
    async with client.sessions.create(scope=SHARED, principal="agent:b") as b:
        await b.remember("Competitor X's Pro tier costs $349/mo.")
    async with client.sessions.create(scope=SHARED) as session:
        state = await session.get_state(scope=SHARED)
    competitor = [e for e in state.entities if e.name == "Competitor X"]
    assert len(competitor) == 1
    [line] = conflicts(state)
    assert line.startswith("Conflict: Competitor X.") and line.endswith("was $299/mo → now $349/mo")
    [old, new] = [a for a in competitor[0].attributes if a.value in ("$299/mo", "$349/mo")]
    assert (
        old.principal == "agent:a"
        and old.superseded_by
        and old.superseded_by.principal == "agent:b"
    )
    assert new.current and new.superseded_by is None


async def test_explicit_facts_and_repeats_are_not_conflicts(make_client) -> None:
    client = make_client()
    fact = {"entity": {"type": "Vendor", "name": "Initech"}, "key": "status", "value": "preferred"}
    async with client.sessions.create(scope=SHARED) as s:
        await s.remember("Initech is our preferred vendor.", facts=[fact])
        await s.remember("Initech remains preferred.", facts=[fact])
        await s.remember("Initech was dropped.", facts=[{**fact, "value": "dropped"}])
        state = await s.get_state()
    vendor = state.entity("Vendor", "initech")
    assert vendor is not None and vendor.current == {"status": "dropped"}
    assert conflicts(state) == [
        "Conflict: Initech.status was preferred → now dropped",
        "Conflict: Initech.status was preferred → now dropped",
    ]
    assert all(a.extractor == "caller" for a in vendor.attributes)


async def test_bad_facts_are_rejected_before_append(make_client) -> None:
    client = make_client()
    service = await client.service()
    before = await service.log.end_offsets()
    async with client.sessions.create(scope=SHARED) as s:
        for bad in (
            "not a list",
            [{"entity": {"type": "lowercase", "name": "x"}, "key": "k", "value": "v"}],
            [{"entity": {"type": "Vendor", "name": "x"}, "key": "Bad Key", "value": "v"}],
            [{"subject": {"type": "A", "name": "x"}, "predicate": "p"}],
        ):
            try:
                await s.remember("text", facts=bad)
            except InvalidInput:
                continue
            raise AssertionError(f"accepted {bad!r}")
    assert await service.log.end_offsets() == before


async def test_registered_type_guides_extraction(make_client) -> None:
    client = make_client()
    async with client.sessions.create(scope=SHARED) as s:
        await s.register_entity_type(
            EntityType.model_validate(
                {"name": "Vendor", "triggers": ["vendor"], "attributes": [{"key": "ceo"}]}
            )
        )
        await s.remember("The vendor Initech's CEO is Bill Lumbergh.")
        state = await s.get_state()
    assert any(e.type == "Vendor" for e in state.entities), state.formatted


async def test_worker_state_never_shows_a_sibling(make_client) -> None:
    client = make_client()
    fact = {"entity": {"type": "Competitor", "name": "Competitor Y"}, "key": "price", "value": "$1"}
    async with client.sessions.create(scope={**SHARED, "agent": "w2"}) as s:
        await s.remember("Competitor Y costs $1.", facts=[fact])
    async with client.sessions.create(scope={**SHARED, "agent": "w1"}) as s:
        assert (await s.get_state()).entities == []
        try:
            await s.get_state(scope=SHARED)
        except InvalidInput:
            pass
        else:
            raise AssertionError("a worker must not read state above its scope")
    async with client.sessions.create(scope=SHARED) as s:
        assert [e.name for e in (await s.get_state()).entities] == ["Competitor Y"]


async def test_concurrent_conflicting_writers_chain_in_log_order(make_client) -> None:
    client = make_client()

    async def agent(n: int) -> None:
        async with client.sessions.create(scope=SHARED, principal=f"agent:{n}") as s:
            for round_ in range(3):
                await s.remember(
                    f"Competitor Z costs ${100 + 10 * n + round_}/mo.",
                    facts=[
                        {
                            "entity": {"type": "Competitor", "name": "Competitor Z"},
                            "key": "price",
                            "value": f"${100 + 10 * n + round_}/mo",
                        }
                    ],
                )

    await asyncio.gather(*(agent(n) for n in range(8)))
    service = await client.service()
    await catch_up(service)
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            'SELECT m.memory_id FROM memories m ORDER BY m.recorded_at, m.partition, m."offset"'
        )
        log_order = [row[0] for row in await cur.fetchall()]
    async with client.sessions.create(scope=SHARED) as s:
        state = await s.get_state()
    [entity] = state.entities
    by_memory = {a.memory_id: a for a in entity.attributes}
    chain = [by_memory[m] for m in log_order]
    for earlier, later in itertools.pairwise(chain):
        assert earlier.superseded_by is not None
        assert earlier.superseded_by.memory_id == later.memory_id
    assert chain[-1].current
    before = await state_hash(service)
    await rebuild(service)
    await catch_up(service)
    assert await state_hash(service) == before


facts_sequences = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 3), st.booleans()),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=facts_sequences, seed=st.integers(0, 2**32 - 1))
async def test_incremental_with_crashes_equals_full_replay(make_client, sequence, seed) -> None:
    """Random fact events projected in random batches, with crashes mid-batch and redelivery."""
    async with make_client(run_projectors=False, extractor="none") as client:
        await check_incremental_equals_replay(client, sequence, seed)


async def check_incremental_equals_replay(client, sequence, seed) -> None:
    service = await client.service()
    scope = {"org": f"o{uuid.uuid4().hex[:8]}"}
    async with client.sessions.create(scope=scope) as s:
        for entity, key, value, multi in sequence:
            await s.remember(
                f"fact {entity} {key} {value}",
                facts=[
                    {
                        "entity": {"type": "Thing", "name": f"thing {entity}"},
                        "key": f"k{key}",
                        "value": f"v{value}",
                        "cardinality": "multi" if multi and key == 1 else "single",
                    }
                ],
            )
    rng = random.Random(seed)
    ends = await service.log.end_offsets()
    for partition, end in ends.items():
        offset = 0
        while offset < end:
            size = rng.randint(1, 5)
            records = await service.log.read(partition, offset, size)
            if rng.random() < 0.3:  # crash mid-batch: the transaction rolls back
                try:
                    async with service.pool.connection() as conn, conn.transaction():
                        await apply_records(
                            conn,
                            partition,
                            records[: rng.randint(1, len(records))],
                            service.context,
                        )
                        raise RuntimeError("crash")
                except RuntimeError:
                    pass
            redelivered = await service.log.read(
                partition, max(0, offset - rng.randint(0, 3)), size + 3
            )
            async with service.pool.connection() as conn:
                await apply_records(conn, partition, redelivered, service.context, wait=True)
            offset = max(offset, redelivered[-1].position.offset + 1)
    async with service.pool.connection() as conn:
        await move_all_staged(conn)  # the movers' half of a vector's effect (replay does it too)
    incremental = await state_hash(service)
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        await reset_projection(
            conn, service.settings.projection_schema, service.embedder.dim, service.context
        )
    await rebuild(service)
    assert await state_hash(service) == incremental


async def test_between_equally_specific_registrations_the_later_wins(make_client) -> None:
    """`{org}` and `{team}` are both above `{org, team}`: which definition guides extraction
    must not depend on the table's row order."""
    client = make_client()
    org, team = {"org": "acme"}, {"team": "red"}

    async def register(scope: dict[str, str], trigger: str) -> None:
        async with client.sessions.create(scope=scope) as s:
            await s.register_entity_type(
                EntityType.model_validate({"name": "Vendor", "triggers": [trigger]})
            )
            await s.get_state()  # projected before the next registration

    service = await client.service()

    async def chosen() -> list[str]:
        async with service.pool.connection() as conn:
            [vendor] = await registered_types(conn, {**org, **team})
        return vendor.triggers

    await register(org, "supplier")
    await register(team, "vendor")
    assert await chosen() == ["vendor"]
    await register(org, "reseller")  # registered again, later: now it wins
    assert await chosen() == ["reseller"]
