"""`SpectronStore`: a LangGraph `BaseStore` whose items are Spectron memories.

```python
store = SpectronStore(SpectronClient(), scope={"org": "acme", "project": "p1"})
graph = builder.compile(store=store)
```

Namespaces are scopes below the store's base scope: `("users", "u1")` is
`{**base, "ns1": "users", "ns2": "u1"}` (so at most 8 - len(base) labels). `put` appends a memory
at that scope whose metadata carries the key and value (`{"spectron_item": {...}}`) and whose
content is the indexed text; the newest put of a key is its value, earlier ones stay in the log, so
`ahistory` and `aget(as_of=...)` see them, and so do `history(key, "value")` and `get_state`
through a session at the namespace's scope (values of up to 1000 characters of JSON). `delete`
forgets every memory of the key (crypto-shredded, see README "Forgetting"). `search` covers the
prefix namespace and its descendants, never its parents or siblings; without `query` it answers
what LangGraph's InMemoryStore answers (order included), with `query` it ranks by Spectron's
hybrid recall over the indexed text.

Async-native on the loop it is first used on. The sync methods work outside an event loop: if
the store is first used synchronously it runs its client on a private loop thread (so do not
share that client with async code), and sync calls from other threads are handed to the store's
loop. In-process clients read items from the projections; HTTP clients (`SpectronClient(base_url=
..., api_key=...)`) through `GET /v1/sessions/{id}/items...` (spectron/http/routes/items.py), with the
key's floor and capabilities (`delete` needs `forget`). `search` and `list_namespaces` read every
current item under the prefix and filter, order and page in Python: right for agent memory
(thousands of items per base scope), not for millions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)
from langgraph.store.base import validate_op_namespace as _check_labels
from langgraph.store.base.embed import get_text_at_path, tokenize_path

from spectron.asof import AsOf
from spectron.errors import InvalidMetadata, InvalidScope, SpectronError
from spectron.facts import Facts, check_facts
from spectron.integrations.item_source import Client, item_source
from spectron.items import ITEM_FIELD, ItemRow, since_json
from spectron.scope import MAX_DIMENSIONS, Scope, canonical_scope
from spectron.service import MAX_TOP_K
from spectron.validation import check_metadata

T = TypeVar("T")
NAMESPACE_DIMENSION = "ns{}"  # ns1, ns2, ...: the namespace's labels as scope dimensions
FACT_ENTITY_TYPE = "StoreItem"
MAX_FACT_VALUE = 1000


class SpectronStore(BaseStore):
    """A LangGraph store on Spectron: namespaces are sub-scopes of `scope`, items are memories."""

    supports_ttl = False

    def __init__(
        self,
        client: Client,
        scope: Scope,
        *,
        index: IndexConfig | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.source = item_source(client, timeout)
        self.scope = canonical_scope(scope)
        taken = [key for key in self.scope if _is_namespace_dimension(key)]
        if taken:
            raise InvalidScope(f"the base scope may not use {taken}: they hold namespace labels")
        self.index_config = index
        self.fields = list((index or {}).get("fields") or ["$"])
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._owns_loop = False

    # -- namespaces and scopes --------------------------------------------------------------

    def namespace_scope(self, namespace: tuple[str, ...]) -> Scope:
        """The scope that holds a namespace's items."""
        room = MAX_DIMENSIONS - len(self.scope)
        if len(namespace) > room:
            raise InvalidNamespaceError(
                f"namespace {namespace} has {len(namespace)} labels; below the base scope"
                f" {self.scope} there is room for {room}"
            )
        labels = {NAMESPACE_DIMENSION.format(i + 1): label for i, label in enumerate(namespace)}
        try:
            return canonical_scope({**self.scope, **labels})
        except InvalidScope as exc:
            raise InvalidNamespaceError(f"namespace {namespace}: {exc}") from exc

    def scope_namespace(self, scope: Scope) -> tuple[str, ...] | None:
        """The namespace a scope holds, or None when it is not one of this store's."""
        extra = {k: v for k, v in scope.items() if k not in self.scope}
        if any(scope.get(k) != v for k, v in self.scope.items()):
            return None
        labels = [extra.get(NAMESPACE_DIMENSION.format(i + 1)) for i in range(len(extra))]
        if not labels or any(label is None for label in labels):
            return None
        return tuple(label for label in labels if label is not None)

    # -- the event loop the client lives on ------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops synchronously (outside the store's event loop)."""
        return self._sync(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops on the store's event loop: this one, unless the store lives elsewhere."""
        return await self._on_loop(self._batch(list(ops)))

    async def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        running = asyncio.get_running_loop()
        if self._loop is None or self._loop.is_closed():
            self._loop = running
        if self._loop is running:
            return await work
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._loop))

    def _sync(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or self._loop.is_closed():
            self._start_private_loop()
        assert self._loop is not None
        if running is self._loop or not self._loop.is_running():
            work.close()
            raise SpectronError(
                "a synchronous SpectronStore call from inside the event loop the store runs on"
                " would block it: use the async methods (aget, aput, asearch, ...) there"
            )
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _start_private_loop(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="spectron-store", daemon=True)
        self._thread.start()
        ready.wait()
        self._loop, self._owns_loop = loop, True

    def close(self) -> None:
        """Close the client and stop the private loop, when sync use started one."""
        if self._owns_loop and self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._loop, self._thread, self._owns_loop = None, None, False

    async def _close_all(self) -> None:
        await self.source.close()
        await self.client.close()

    async def aclose(self) -> None:
        """Close the HTTP sessions the store opened (the client stays the caller's)."""
        await self._on_loop(self.source.close())

    # -- the operations ---------------------------------------------------------------------

    async def _batch(self, ops: list[Op]) -> list[Result]:
        for op in ops:
            _check_labels(op)
        # as in LangGraph's stores: reads see the state before the batch, the last put of a key wins
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        results: list[Result] = []
        for op in ops:
            if isinstance(op, PutOp):
                puts[(op.namespace, op.key)] = op
                results.append(None)
            elif isinstance(op, GetOp):
                results.append(await self._get(op.namespace, op.key))
            elif isinstance(op, SearchOp):
                results.append(await self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list_namespaces(op))
            else:
                raise InvalidMetadata(f"unknown store operation {type(op).__name__}")
        for op in puts.values():
            if op.value is None:
                await self._delete(op.namespace, op.key)
            else:
                await self._put(op)
        return results

    async def _get(self, namespace: tuple[str, ...], key: str, as_of: AsOf = None) -> Item | None:
        scope = self.namespace_scope(namespace)
        rows = await self.source.items(scope, key=str(key), exact=True, as_of=as_of)
        return _item(rows[0], namespace) if rows else None

    async def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = self.namespace_scope(op.namespace_prefix) if op.namespace_prefix else self.scope
        found: list[tuple[ItemRow, tuple[str, ...]]] = []
        for row in await self.source.items(prefix):
            namespace = self.scope_namespace(row.scope)
            if namespace is None or namespace[: len(op.namespace_prefix)] != op.namespace_prefix:
                continue
            if op.filter and not all(
                _matches(row.value.get(field), wanted) for field, wanted in op.filter.items()
            ):
                continue
            found.append((row, namespace))
        if op.query:
            return await self._ranked(prefix, op, found)
        # InMemoryStore's order: namespaces as they came into being, then keys as they were created
        found.sort(key=lambda pair: (pair[0].namespace_since.order, pair[1], pair[0].created.order))
        return [
            _search_item(row, namespace)
            for row, namespace in found[op.offset : op.offset + op.limit]
        ]

    async def _ranked(
        self, prefix: Scope, op: SearchOp, found: list[tuple[ItemRow, tuple[str, ...]]]
    ) -> list[SearchItem]:
        """Hybrid recall over the indexed text, kept to current items inside the prefix."""
        assert op.query is not None
        current = {row.memory_id: (row, namespace) for row, namespace in found}
        wanted = op.offset + op.limit
        async with self.client.sessions.create(scope=prefix) as session:
            recalled = await session.recall(
                op.query,
                top_k=min(MAX_TOP_K, max(4 * wanted, 20)),
                metadata={ITEM_FIELD: {}},
                timeout=self.timeout,
            )
        hits = [
            _search_item(*current[item.id], score=item.score)
            for item in recalled.items
            if item.id in current
        ]
        return hits[op.offset : wanted]

    async def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        scopes = await self.source.scopes(self.scope)
        namespaces = {ns for ns in map(self.scope_namespace, scopes) if ns is not None}
        matching = [
            ns
            for ns in namespaces
            if all(_namespace_matches(condition, ns) for condition in op.match_conditions or ())
        ]
        if op.max_depth is not None:
            listed = sorted({ns[: op.max_depth] for ns in matching})
        else:
            listed = sorted(matching)
        return listed[op.offset : op.offset + op.limit]

    async def _put(self, op: PutOp) -> None:
        if not isinstance(op.value, Mapping):
            raise InvalidMetadata(f"a store value must be a dict, got {type(op.value).__name__}")
        value = dict(op.value)
        if not all(isinstance(field, str) for field in value):
            raise InvalidMetadata("a store value's keys must be strings")
        scope = self.namespace_scope(op.namespace)
        item = {"key": op.key, "value": value, "since": None}
        metadata = check_metadata({ITEM_FIELD: item})  # before any read: bad input fails fast
        siblings = await self.source.items(scope, exact=True)
        since = min((row.namespace_since for row in siblings), key=lambda p: p.order, default=None)
        if since is not None:
            metadata[ITEM_FIELD]["since"] = since_json(since)
        async with self.client.sessions.create(scope=scope) as session:
            await session.remember(
                self._content(op, value), "knowledge", metadata, _facts(op.key, value)
            )

    def _content(self, op: PutOp, value: dict[str, Any]) -> str:
        """The text recall indexes: the store's (or this put's) fields, else the key."""
        if op.index is False:
            return op.key
        fields = self.fields if op.index is None else list(op.index)
        texts: list[str] = []
        for path in fields:
            if path == "$":
                texts.append(json.dumps(value, ensure_ascii=False, default=str))
            else:
                texts.extend(get_text_at_path(value, tokenize_path(path)))
        text = "\n".join(t for t in texts if t.strip())
        return text or op.key

    async def _delete(self, namespace: tuple[str, ...], key: str) -> None:
        scope = self.namespace_scope(namespace)
        versions = await self.source.versions(scope, key)
        if versions:
            async with self.client.sessions.create(scope=scope) as session:
                for version in versions:
                    await session.forget(version.memory_id, reason="langgraph store delete")

    # -- beyond BaseStore: time travel -----------------------------------------------------

    async def aget(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
        as_of: AsOf = None,
    ) -> Item | None:
        """The item, or its value as of a log time or position (`as_of`)."""
        if as_of is None:
            return await super().aget(namespace, key, refresh_ttl=refresh_ttl)
        return await self._on_loop(self._get(namespace, key, as_of))

    async def ahistory(self, namespace: tuple[str, ...], key: str) -> list[Item]:
        """Every value the key has held (and not had deleted), oldest first."""
        versions = await self._on_loop(self.source.versions(self.namespace_scope(namespace), key))
        if not versions:
            return []
        created = versions[0].at.recorded_at
        return [
            Item(
                value=v.value,
                key=key,
                namespace=namespace,
                created_at=created,
                updated_at=v.at.recorded_at,
            )
            for v in versions
        ]


def _is_namespace_dimension(key: str) -> bool:
    return key.startswith("ns") and key[2:].isdigit()


def _item(row: ItemRow, namespace: tuple[str, ...]) -> Item:
    return Item(
        value=row.value,
        key=row.key,
        namespace=namespace,
        created_at=row.created.recorded_at,
        updated_at=row.updated.recorded_at,
    )


def _search_item(
    row: ItemRow, namespace: tuple[str, ...], score: float | None = None
) -> SearchItem:
    return SearchItem(
        namespace=namespace,
        key=row.key,
        value=row.value,
        created_at=row.created.recorded_at,
        updated_at=row.updated.recorded_at,
        score=score,
    )


def _facts(key: str, value: dict[str, Any]) -> Facts | None:
    """The value as an attribute of a StoreItem entity, so history and get_state show it.

    Always a Facts (possibly empty): caller facts switch off extraction, which would otherwise
    mine the JSON for entities."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    name = " ".join(key.split())
    if len(text) > MAX_FACT_VALUE or not name or len(name) > 200 or "\x00" in key:
        return Facts()
    attribute = {"entity": {"type": FACT_ENTITY_TYPE, "name": name}, "key": "value", "value": text}
    return check_facts([attribute])


def _matches(actual: Any, wanted: Any) -> bool:
    """LangGraph's filter rule: exact match, nested dicts by key, lists elementwise, $-operators."""
    if isinstance(wanted, dict):
        if any(str(k).startswith("$") for k in wanted):
            return all(_operator(actual, op, operand) for op, operand in wanted.items())
        if not isinstance(actual, dict):
            return False
        return all(_matches(actual.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(wanted)
            and all(_matches(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)


def _operator(actual: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(actual == operand)
    if operator == "$ne":
        return bool(actual != operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        left, right = float(actual), float(operand)
        return {"$gt": left > right, "$gte": left >= right, "$lt": left < right}.get(
            operator, left <= right
        )
    raise InvalidMetadata(f"unsupported filter operator {operator!r}")


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if condition.match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(want == "*" or have == want for have, want in pairs)


__all__ = ["SpectronStore"]
