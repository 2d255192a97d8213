"""Time travel (DESIGN rule 5): an as-of answer equals a fresh projection of the log prefix."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projectors.driver import apply_records
from projectors.replay import reset_projection
from projectors.tailer import enrich_once, project_once
from projectors.vector_index import move_all_staged
from spectron import InvalidInput, LogPosition, SpectronClient
from spectron.config import Settings
from spectron.consistency import AWAITING_FACTS, AWAITING_VECTOR, wait_for_projections
from spectron.db import open_pool
from spectron.history import attribute_history
from spectron.log import decode_record
from spectron.positions import projection_positions
from spectron.profile import load_profile
from spectron.recall import search
from spectron.service import MemoryService
from spectron.state import load_state
from tests.log_support import opened

operations = st.lists(
    st.one_of(
        # a memory whose facts the pattern extractor finds later (its own event)
        st.tuples(st.just("extracted"), st.integers(0, 1), st.integers(0, 3)),
        # a memory carrying its facts itself
        st.tuples(st.just("caller"), st.integers(0, 1), st.integers(0, 3)),
        st.tuples(st.just("plain"), st.integers(0, 3), st.integers(0, 0)),
        st.tuples(st.just("reflect"), st.integers(0, 0), st.integers(0, 0)),
    ),
    min_size=1,
    max_size=7,
)


def state_shape(state) -> list:
    return sorted(
        (
            e.type,
            e.name.lower(),
            sorted(e.scope.items()),
            [
                (
                    a.key,
                    a.value,
                    str(a.memory_id),
                    str(a.superseded_by.memory_id) if a.superseded_by else None,
                )
                for a in e.attributes
            ],
            sorted((r.predicate, r.object, str(r.memory_id)) for r in e.relations),
        )
        for e in state.entities
    )


def history_shape(entries) -> list:
    return [
        (e.key, e.value, e.memory_id, e.superseded_by, e.superseded_by_memory, e.superseded_at)
        for e in entries
    ]


def profile_shape(profile) -> tuple:
    return (
        profile.counts_by_category,
        profile.counts_by_scope,
        [m.id for m in profile.recent],
        [r.id for r in profile.reflections],
    )


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_as_of_equals_projection_of_log_prefix(make_client, ops) -> None:
    await check_as_of_against_prefixes(make_client(), ops)


@settings(
    max_examples=6,  # each example is a few Kafka round trips and up to eight fresh projections
    deadline=None,
    derandomize=True,  # the same examples every run: a failure here is never a fluke of the seed
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_as_of_equals_projection_of_log_prefix_on_kafka(
    make_client, kafka_deployment, ops
) -> None:
    client = make_client(
        kafka=kafka_deployment.bootstrap,
        database=kafka_deployment.database,
        run_projectors=False,
        settings=Settings(topic=kafka_deployment.topic, partitions=4),
    )
    await check_as_of_against_prefixes(client, ops)


async def check_as_of_against_prefixes(client: SpectronClient, ops: list) -> None:
    """Write `ops` in a scope of its own; at every log time, as-of reads equal a fresh projection."""
    # its own org: the Kafka deployment's database is shared with other tests
    scope = {"org": f"o{uuid.uuid4().hex[:8]}", "project": "p"}
    async with client:
        service = await client.service()
        database = service.settings.database_url
        assert database is not None
        async with client.sessions.create(scope=scope) as s:
            for kind, entity, value in ops:
                if kind == "extracted":
                    await s.remember(f"Competitor Q{entity}'s list price is ${value}00.")
                elif kind == "caller":
                    await s.remember(
                        f"Q{entity} price noted.",
                        facts=[
                            {
                                "entity": {"type": "Competitor", "name": f"Competitor Q{entity}"},
                                "key": "list_price",
                                "value": f"${value}00",
                            }
                        ],
                    )
                elif kind == "plain":
                    await s.remember(f"pricing note number {entity}")
                else:
                    await s.reflect("pricing", persist=True)
        mine = await settled_records(service, scope)
        times = sorted({r.recorded_at for records in mine.values() for r in records})
        vector = service.embedder.embed_query("price of competitor")
        schema = f"prefix_{uuid.uuid4().hex[:8]}"
        prefix_pool = await open_pool(database, "public", max_size=2)
        try:
            for at in times:
                # a fresh projection of exactly the records logged by `at`
                async with prefix_pool.connection() as conn:
                    await conn.set_autocommit(True)
                    await reset_projection(conn, schema, service.embedder.dim, service.context)
                    await conn.execute(f'SET search_path TO "{schema}", public')
                    for partition, records in mine.items():
                        prefix = [r for r in records if r.recorded_at <= at]
                        await apply_records(
                            conn, partition, prefix, service.context, wait=True, contiguous=False
                        )
                    await move_all_staged(conn)  # what the live movers did for the live side
                    async with service.pool.connection() as live:
                        want_state = await load_state(conn, scope)
                        got_state = await load_state(live, scope, as_of=at)
                        assert state_shape(got_state) == state_shape(want_state), at
                        want = await search(conn, scope, "price", vector, top_k=100)
                        got = await search(live, scope, "price", vector, top_k=100, as_of=at)
                        assert {(i.id, i.embedded) for i in got} == {
                            (i.id, i.embedded) for i in want
                        }
                        for entity in {e.name for e in want_state.entities}:
                            want_history = await attribute_history(conn, scope, entity)
                            got_history = await attribute_history(live, scope, entity, as_of=at)
                            assert history_shape(got_history) == history_shape(want_history), at
                        want_profile = await load_profile(conn, scope, want_state)
                        got_profile = await load_profile(live, scope, got_state, as_of=at)
                        assert profile_shape(got_profile) == profile_shape(want_profile), at
                    await conn.execute("SET search_path TO public")
        finally:
            async with prefix_pool.connection() as conn:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await prefix_pool.close()


async def settled_records(service: MemoryService, scope: dict[str, str]) -> dict[int, list]:
    """Once the scope's memories are embedded and extracted, its records as the projection saw them.

    Waiting for the vectors alone would leave a FactsExtracted event in flight: logged after the
    log is read, yet stamped (by the producer's clock, or at the same microsecond) no later than
    an as-of time checked, so the live projection would know a fact the prefix cannot.
    """
    heads = await service.log.end_offsets()
    for awaiting in (AWAITING_VECTOR, AWAITING_FACTS):
        pending = await wait_for_projections(service.pool, heads, scope, 30.0, awaiting)
        assert pending == 0, f"{pending} memories still awaiting {awaiting}"
    async with service.pool.connection() as conn:
        # nothing more is owed to this scope: what the live projection applied is the whole story
        applied = await projection_positions(conn)
    mine: dict[int, list] = {}
    for partition, end in applied.items():
        offset = 0
        while offset < end:
            batch = await service.log.read(partition, offset, 1000)
            assert batch, f"records {offset}..{end - 1} of partition {partition} unreadable"
            offset = batch[-1].position.offset + 1
            for raw, record in zip(batch, await opened(service.pool, batch), strict=True):
                if record.position.offset < end and decode_record(record).event.scope == scope:
                    mine.setdefault(partition, []).append(raw)  # as stored: replay unseals
    return mine


async def test_as_of_through_the_session_api(make_client) -> None:
    scope = {"org": f"o{uuid.uuid4().hex[:8]}"}
    client = make_client()
    async with client.sessions.create(scope=scope) as s:
        first = await s.remember("Competitor X's Pro tier costs $299/mo.")
        await s.get_state()  # let its facts land before the second price
        await s.remember("Competitor X's Pro tier costs $349/mo.")
        now = await s.get_state()
        service = await client.service()
        records = await service.log.read(first.partition, first.offset, 100)
        facts_time = next(
            r.recorded_at
            for r in records
            if b'"FactsExtracted"' in r.value and str(first.id).encode() in r.value
        )
        then = await s.get_state(as_of=facts_time.isoformat())
        by_position = await s.get_state(as_of=LogPosition(first.partition, first.offset))
        before = await s.get_state(as_of=datetime(2000, 1, 1, tzinfo=UTC))
        recalled = await s.recall("Pro tier", as_of=facts_time, top_k=10)
        profile = await s.profile(as_of=first.recorded_at)
        for bad in ("yesterday", datetime(2026, 1, 1), LogPosition(0, 10**9), LogPosition(99, 0)):
            with pytest.raises(InvalidInput):
                await s.get_state(as_of=bad)
    [old_price] = [a for a in then.entities[0].attributes if a.value == "$299/mo"]
    assert old_price.current, "at that time $349 had not been written"
    assert any(a.superseded_by for e in now.entities for a in e.attributes)
    assert by_position.entities == [], (
        "at the memory's own position its facts were not extracted yet"
    )
    assert before.entities == []
    assert [i.id for i in recalled.items] == [first.id]
    assert sum(profile.counts_by_category.values()) == 1


async def test_history_as_of_derives_what_superseded_a_value_then(make_client) -> None:
    """A value whose facts are logged late joins the chain between two others: before its facts,
    the first value was superseded by the third, as get_state says, not current."""
    client = make_client(run_projectors=False)
    service = await client.service()
    scope = {"org": f"o{uuid.uuid4().hex[:8]}", "project": "p"}

    def priced(value: str) -> list[dict]:
        entity = {"type": "Competitor", "name": "Competitor Q0"}
        return [{"entity": entity, "key": "price", "value": value}]  # the extractor's key

    async with client.sessions.create(scope=scope) as s:
        await s.remember("Q0 price noted.", facts=priced("$100"))
        await s.remember("Competitor Q0's list price is $200.")  # facts come from the extractor
        await s.remember("Q0 price noted again.", facts=priced("$300"))
    while await project_once(service.pool, service.log, service.context):
        pass
    async with service.pool.connection() as conn:
        then = (await (await conn.execute("SELECT now()")).fetchone())[0]
    for enricher in service.enrichers():  # the $200 memory's facts, logged after `then`
        await enrich_once(service.pool, service.log, enricher)
    while await project_once(service.pool, service.log, service.context):
        pass

    async with service.pool.connection() as conn:
        now = await attribute_history(conn, scope, "Competitor Q0", "price")
        past = await attribute_history(conn, scope, "Competitor Q0", "price", as_of=then)
        state = await load_state(conn, scope, as_of=then)
    assert [(e.value, e.superseded_by) for e in now] == [
        ("$100", "$200"),
        ("$200", "$300"),
        ("$300", None),
    ]
    assert [(e.value, e.superseded_by) for e in past] == [("$100", "$300"), ("$300", None)]
    [entity] = state.entities
    assert [
        (a.value, a.superseded_by.value if a.superseded_by else None) for a in entity.attributes
    ] == [
        ("$100", "$300"),
        ("$300", None),
    ]
