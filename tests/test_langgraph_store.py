"""SpectronStore, LangGraph's BaseStore on Spectron: differential against InMemoryStore, then the
Spectron extras (history, as_of, forgetting, hybrid search), a compiled graph and LangMem's tools.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from psycopg.types.json import Jsonb

from spectron import InvalidInput, InvalidMetadata, SpectronClient
from spectron.embedding.hashing import HashingEmbedder
from spectron.http.keys import AUTH_SCHEMA
from spectron.integrations import item_source
from spectron.integrations.langgraph import SpectronStore
from spectron.maintenance import catch_up
from spectron.scope import Scope
from tests.http_support import fresh_org

pytest_plugins = ["tests.http_support"]  # module_database

LABELS = ["a", "b", "c"]
KEYS = ["k1", "k2", "k3", "k4"]


@pytest.fixture(scope="module")
async def local_client(module_database: str) -> AsyncIterator[SpectronClient]:
    """An in-process client on the module's database (lives on the test loop)."""
    local = SpectronClient(database=module_database, embedder=HashingEmbedder(), extractor="none")
    await local.service()
    try:
        yield local
    finally:
        await local.close()


@pytest.fixture(params=["in-process", "http"])
async def client(request, local_client, http_client) -> Any:
    """The in-process client, or an HTTP client of the app on the same database (ASGI)."""
    if request.param == "http":
        return await http_client()
    return local_client


@pytest.fixture
def base() -> Scope:
    """This test's own base scope."""
    return {"org": fresh_org(), "project": "lg"}


def random_namespace(rng: random.Random, min_depth: int = 1) -> tuple[str, ...]:
    return tuple(rng.choice(LABELS) for _ in range(rng.randint(min_depth, 3)))


def random_value(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"n": rng.randint(0, 3), "tag": rng.choice(["x", "y"])}
    if rng.random() < 0.5:
        value["nested"] = {"colour": rng.choice(["red", "blue"]), "list": [1, rng.randint(0, 1)]}
    return value


def random_filter(rng: random.Random) -> dict[str, Any] | None:
    choice = rng.randint(0, 5)
    if choice == 0:
        return {"n": rng.randint(0, 3)}
    if choice == 1:
        return {"tag": rng.choice(["x", "y"]), "n": {"$gte": rng.randint(0, 3)}}
    if choice == 2:
        return {"nested": {"colour": rng.choice(["red", "blue"])}}
    if choice == 3:
        return {"n": {"$ne": rng.randint(0, 3)}}
    return None


def prune_empty_namespaces(store: InMemoryStore) -> None:
    """The one deliberate difference: InMemoryStore keeps (and lists) an empty namespace forever
    once a get or delete touched it; Spectron, like LangGraph's Postgres store, lists namespaces
    that hold items. Pruning the reference after each operation compares everything else."""
    for namespace in [ns for ns, items in store._data.items() if not items]:
        del store._data[namespace]


def plain(item: Item | None) -> tuple[Any, ...] | None:
    """An item without its timestamps (they come from different clocks: see check_times)."""
    return None if item is None else (item.namespace, item.key, item.value)


def random_op(rng: random.Random, held: list[tuple[str, ...]]) -> Any:
    """A put, get or search for a batch.

    Gets only ask namespaces that hold items, and deletes stay out of batches: inside one batch
    InMemoryStore would create (get, delete) or keep (delete of the last key) an empty namespace
    and order later puts by it, which the pruning between operations cannot undo."""
    choice = rng.randint(0, 2)
    if choice == 1 and held:
        return GetOp(rng.choice(held), rng.choice(KEYS))
    if choice == 2:
        return SearchOp(random_namespace(rng)[:1], filter=random_filter(rng), limit=5)
    return PutOp(random_namespace(rng), rng.choice(KEYS), random_value(rng))


def normal(result: Any) -> Any:
    """A batch result without timestamps."""
    if isinstance(result, list):
        return [normal(r) for r in result]
    if isinstance(result, Item):
        return plain(result)
    return result


def check_times(item: Item | None) -> None:
    if item is not None:
        assert item.created_at <= item.updated_at


async def run_sequence(store: SpectronStore, seed: int, steps: int) -> dict[str, int]:
    """`steps` random operations on both stores; every answer compared."""
    rng = random.Random(seed)
    reference = InMemoryStore()
    counts: dict[str, int] = {}
    for step in range(steps):
        kinds = ["put", "get", "delete", "search", "list", "batch"]
        kind = rng.choices(kinds, weights=[5, 2, 2, 3, 2, 2])[0]
        counts[kind] = counts.get(kind, 0) + 1
        where = f"seed {seed} step {step} {kind}"
        if kind == "put":
            namespace, key, value = random_namespace(rng), rng.choice(KEYS), random_value(rng)
            await reference.aput(namespace, key, value)
            await store.aput(namespace, key, value)
        elif kind == "delete":
            namespace, key = random_namespace(rng), rng.choice(KEYS)
            await reference.adelete(namespace, key)
            await store.adelete(namespace, key)
        elif kind == "get":
            namespace, key = random_namespace(rng), rng.choice(KEYS)
            expected, got = await reference.aget(namespace, key), await store.aget(namespace, key)
            assert plain(got) == plain(expected), where
            check_times(got)
        elif kind == "search":
            prefix = random_namespace(rng, min_depth=0)[: rng.randint(0, 2)]
            args: dict[str, Any] = {
                "filter": random_filter(rng),
                "limit": rng.randint(1, 6),
                "offset": rng.choice([0, 0, 1, 3]),
            }
            expected_items = await reference.asearch(prefix, **args)
            got_items = await store.asearch(prefix, **args)
            assert [plain(i) for i in got_items] == [plain(i) for i in expected_items], (
                where,
                prefix,
                args,
            )
            assert all(i.score is None for i in got_items)
            for item in got_items:
                check_times(item)
        elif kind == "batch":
            # one batch: reads see the state before it, the last put of a key wins
            held = sorted(reference._data)
            ops = [random_op(rng, held) for _ in range(rng.randint(2, 5))]
            if rng.random() < 0.5:
                # first: InMemoryStore's gets add empty namespaces as they go (see the pruning)
                ops.insert(0, ListNamespacesOp(max_depth=rng.choice([None, 2]), limit=50))
            expected_results = await reference.abatch(ops)
            got_results = await store.abatch(ops)
            assert [normal(r) for r in got_results] == [normal(r) for r in expected_results], (
                where,
                ops,
            )
        else:
            args = {
                "prefix": random_namespace(rng)[: rng.randint(1, 2)]
                if rng.random() < 0.4
                else None,
                "suffix": (rng.choice([*LABELS, "*"]),) if rng.random() < 0.3 else None,
                "max_depth": rng.choice([None, None, 1, 2]),
                "limit": rng.randint(1, 10),
                "offset": rng.choice([0, 0, 1, 2]),
            }
            expected_ns = await reference.alist_namespaces(**args)
            assert await store.alist_namespaces(**args) == expected_ns, (where, args)
        prune_empty_namespaces(reference)
    # and the final states agree in full
    everything = await reference.asearch((), limit=1000)
    assert [plain(i) for i in await store.asearch((), limit=1000)] == [plain(i) for i in everything]
    return counts


# three sequences in-process, one over HTTP (the same store code, reading through the routes)
@pytest.mark.parametrize(
    ("transport", "seed"), [("in-process", 1), ("in-process", 2), ("in-process", 3), ("http", 4)]
)
async def test_answers_what_inmemorystore_answers(
    local_client, http_client, base, transport: str, seed: int
) -> None:
    client = local_client if transport == "in-process" else await http_client()
    store = SpectronStore(client, scope=base)
    counts = await run_sequence(store, seed, steps=70)
    assert all(counts.get(kind, 0) > 3 for kind in ("put", "get", "delete", "search", "list"))
    assert counts.get("batch", 0) > 0


async def log_records(client: SpectronClient) -> int:
    service = await client.service()
    await catch_up(service, 60.0)
    return sum((await service.log.end_offsets()).values())


async def test_put_keeps_history_and_as_of_and_delete_forgets(client, base) -> None:
    store = SpectronStore(client, scope=base)
    namespace = ("users", "u1")
    await store.aput(namespace, "prefs", {"theme": "dark"})
    first = await store.aget(namespace, "prefs")
    await store.aput(namespace, "prefs", {"theme": "light"})
    now = await store.aget(namespace, "prefs")
    assert first is not None and now is not None and now.value == {"theme": "light"}
    assert now.created_at == first.created_at and now.updated_at > first.updated_at
    history = await store.ahistory(namespace, "prefs")
    assert [item.value for item in history] == [{"theme": "dark"}, {"theme": "light"}]
    then = await store.aget(namespace, "prefs", as_of=first.updated_at)
    assert then is not None and then.value == {"theme": "dark"}

    # the same history through Spectron's own API, at the namespace's scope
    scope = store.namespace_scope(namespace)
    assert scope == {**base, "ns1": "users", "ns2": "u1"}
    async with client.sessions.create(scope=scope) as session:
        entries = await session.history("prefs", "value")
    assert [json.loads(entry.value) for entry in entries] == [{"theme": "dark"}, {"theme": "light"}]
    assert entries[0].superseded_by == entries[1].value

    await store.adelete(namespace, "prefs")
    assert await store.aget(namespace, "prefs") is None
    assert await store.ahistory(namespace, "prefs") == []
    async with client.sessions.create(scope=scope) as session:
        assert (await session.recall("theme dark light", top_k=10)).items == []
        assert await session.history("prefs", "value") == []


async def test_query_search_ranks_by_recall_and_never_leaves_the_prefix(client, base) -> None:
    store = SpectronStore(client, scope=base, index={"fields": ["text"]})
    await store.aput(("docs",), "doc1", {"text": "Python tutorial for beginners", "n": 1})
    await store.aput(("docs",), "doc2", {"text": "TypeScript guide", "n": 2})
    await store.aput(("docs", "old"), "doc3", {"text": "Python 2 migration notes", "n": 3})
    await store.aput(("other",), "doc4", {"text": "Python tutorial", "n": 4})
    async with client.sessions.create(scope=base) as session:  # a parent of every namespace
        await session.remember("Python tutorial kept at the base scope")
    found = await store.asearch(("docs",), query="python tutorial", limit=10)
    assert found[0].key == "doc1" and found[0].value["n"] == 1
    assert {item.key for item in found} <= {"doc1", "doc2", "doc3"}
    assert all(item.namespace[:1] == ("docs",) and item.score is not None for item in found)
    scores = [item.score for item in found]
    assert scores == sorted(scores, reverse=True)
    # a new value replaces the old one in search too (old versions are history, not results)
    await store.aput(("docs",), "doc1", {"text": "Python tutorial, second edition", "n": 5})
    again = await store.asearch(("docs",), query="python tutorial", limit=10)
    assert [item.value["n"] for item in again if item.key == "doc1"] == [5]
    filtered = await store.asearch(("docs",), query="python", filter={"n": 3})
    assert [item.key for item in filtered] == ["doc3"]


async def test_bad_input_raises_typed_errors_and_appends_nothing(
    client, local_client, base
) -> None:
    store = SpectronStore(client, scope=base)
    deep: dict[str, Any] = {"x": 1}
    for _ in range(10):
        deep = {"d": deep}
    before = await log_records(local_client)
    with pytest.raises(InvalidMetadata):
        await store.aput(("a",), "k", {"not json": {1, 2}})
    with pytest.raises(InvalidMetadata):
        await store.aput(("a",), "k", deep)
    with pytest.raises(InvalidMetadata):
        await store.aput(("a",), "k", {1: "int key"})  # type: ignore[dict-item]
    with pytest.raises(InvalidNamespaceError):
        await store.aput(tuple("abcdefg"), "k", {"x": 1})  # 7 labels below a 2-dimension base
    with pytest.raises(InvalidNamespaceError):
        await store.aput(("a.b",), "k", {"x": 1})  # LangGraph's own label rule
    with pytest.raises(InvalidInput):
        SpectronStore(client, scope={**base, "ns1": "taken"})
    assert await log_records(local_client) == before


@pytest.mark.parametrize("key", ["", " ", "k" * 1001], ids=["empty", "blank", "long"])
async def test_any_key_that_was_put_can_be_read_and_deleted(local_client, base, key: str) -> None:
    store = SpectronStore(local_client, scope=base)
    await store.aput(("notes",), key, {"x": 1})
    found = await store.aget(("notes",), key)
    assert found is not None and found.value == {"x": 1}
    await store.adelete(("notes",), key)
    assert await store.aget(("notes",), key) is None


class Visits(TypedDict):
    user: str
    seen: int


def visit_graph(node: Any, store: BaseStore) -> Any:
    builder = StateGraph(Visits)
    builder.add_node("count", node)
    builder.add_edge(START, "count")
    builder.add_edge("count", END)
    return builder.compile(store=store)


def test_a_compiled_graph_reads_and_writes_the_store_synchronously(module_database) -> None:
    """Sync invoke, outside any event loop: the store runs its own client on a private loop."""
    local = SpectronClient(database=module_database, embedder=HashingEmbedder(), extractor="none")
    store = SpectronStore(local, scope={"org": fresh_org(), "project": "graph"})

    def count(state: Visits, *, store: BaseStore) -> dict[str, int]:
        namespace = ("users", state["user"])
        item = store.get(namespace, "visits")
        seen = (item.value["count"] if item else 0) + 1
        store.put(namespace, "visits", {"count": seen})
        return {"seen": seen}

    graph = visit_graph(count, store)
    try:
        assert graph.invoke({"user": "ann", "seen": 0})["seen"] == 1
        assert graph.invoke({"user": "ann", "seen": 0})["seen"] == 2
        assert graph.invoke({"user": "bob", "seen": 0})["seen"] == 1
        item = store.get(("users", "ann"), "visits")
        assert item is not None and item.value == {"count": 2}
        assert store.list_namespaces(prefix=("users",)) == [("users", "ann"), ("users", "bob")]
    finally:
        store.close()


async def test_a_compiled_graph_reads_and_writes_the_store_asynchronously(client, base) -> None:
    store = SpectronStore(client, scope=base)

    async def count(state: Visits, *, store: BaseStore) -> dict[str, int]:
        namespace = ("users", state["user"])
        item = await store.aget(namespace, "visits")
        seen = (item.value["count"] if item else 0) + 1
        await store.aput(namespace, "visits", {"count": seen})
        return {"seen": seen}

    graph = visit_graph(count, store)
    assert (await graph.ainvoke({"user": "ann", "seen": 0}))["seen"] == 1
    assert (await graph.ainvoke({"user": "ann", "seen": 0}))["seen"] == 2
    history = await store.ahistory(("users", "ann"), "visits")
    assert [item.value for item in history] == [{"count": 1}, {"count": 2}]


async def test_langmem_memory_tools_work_on_the_store(client, base) -> None:
    langmem = pytest.importorskip("langmem")
    store = SpectronStore(client, scope=base)
    manage = langmem.create_manage_memory_tool(namespace=("memories",), store=store)
    search = langmem.create_search_memory_tool(namespace=("memories",), store=store)
    created = await manage.ainvoke({"content": "The user prefers dark mode.", "action": "create"})
    await manage.ainvoke({"content": "The user lives in Lisbon.", "action": "create"})
    [memory_id] = [word for word in str(created).split() if len(word) == 36]
    found = await search.ainvoke({"query": "dark mode"})
    assert "The user prefers dark mode." in str(found)
    await manage.ainvoke(
        {"content": "The user prefers light mode.", "action": "update", "id": memory_id}
    )
    item = await store.aget(("memories",), memory_id)
    assert item is not None and item.value["content"] == "The user prefers light mode."
    await manage.ainvoke({"action": "delete", "id": memory_id})
    assert await store.aget(("memories",), memory_id) is None
    assert [i.value["content"] for i in await store.asearch(("memories",))] == [
        "The user lives in Lisbon."
    ]


async def test_over_http_only_the_scopes_read_last_keep_a_session(
    local_client, http_client, base, monkeypatch
) -> None:
    """A namespace per user must not hold a server session per user (the key's cap refused
    every open past it); a session the server expired is opened again."""
    monkeypatch.setattr(item_source, "SESSIONS_KEPT", 3)
    store = SpectronStore(await http_client(), scope=base)
    for user in range(8):
        await store.aput(("users", f"u{user}"), "prefs", {"n": user})
        found = await store.aget(("users", f"u{user}"), "prefs")
        assert found is not None and found.value == {"n": user}
    service = await local_client.service()
    mine = f"SELECT count(*) FROM {AUTH_SCHEMA}.sessions WHERE scope @> %s"
    async with service.pool.connection() as conn:
        cur = await conn.execute(mine, [Jsonb({"org": base["org"]})])
        assert await cur.fetchone() == (3,)
        # the server drops sessions idle past their lifetime
        await conn.execute(
            f"DELETE FROM {AUTH_SCHEMA}.sessions WHERE scope @> %s", [Jsonb({"org": base["org"]})]
        )
        await conn.commit()
    found = await store.aget(("users", "u7"), "prefs")
    assert found is not None and found.value == {"n": 7}
