"""MemoryService: the operations behind every client (in-process today, HTTP later), on one log and one database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from projectors.dead_letters import retry_dead_letters
from projectors.driver import ProjectionGap, apply_records
from projectors.enrichment import (
    EmbeddingEnricher,
    Enricher,
    enrichment_consumer,
    enrichment_passes,
)
from projectors.forgetting import purge_memories
from projectors.replay import restore_indexes
from projectors.tailer import run_enrichment_tailer, run_projection_tailer
from spectron.asof import AsOf, resolve_as_of
from spectron.config import Settings
from spectron.consistency import (
    AWAITING_FACTS,
    ProjectionWatch,
    owed_heads,
    wait_for_projections,
)
from spectron.db import open_pool, read_snapshot
from spectron.dlq import RetryReport
from spectron.embedding import Embedder, Vectors
from spectron.embedding.cache import QueryVectorCache
from spectron.errors import InvalidInput, LogUnavailable, SpectronError
from spectron.events import (
    EntityTypeRegistered,
    EntityTypeRegisteredPayload,
    LogPosition,
    MemoryRecorded,
    MemoryRecordedPayload,
    ReflectionRecorded,
    ReflectionRecordedPayload,
    new_event_fields,
)
from spectron.extraction import Extractor
from spectron.facts import EntityType, check_facts
from spectron.forgetting import (
    ForgetResult,
    logged_filter,
    parse_filter,
    select_memory,
    select_scope,
    shred,
    tombstones,
)
from spectron.health import LogStatus, log_status
from spectron.history import AuditPage, HistoryEntry, attribute_history, recent_audit
from spectron.log.owed import parse_token
from spectron.memories import MemoryPage, MemoryRecord, get_memory, list_memories
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.pace import Pace
from spectron.profile import load_profile
from spectron.reasoning import Reasoner, ReflectionInput
from spectron.recall import (
    DEFAULT_TUNING,
    RERANK_POOL,
    RecallMode,
    format_items,
    reranked,
    search,
)
from spectron.rerank import Reranker
from spectron.runtime import Runtime, open_runtime
from spectron.scope import Scope, canonical_scope, is_within
from spectron.scope_tree import ScopeTree, scope_tree
from spectron.state import load_state
from spectron.validation import check_category, check_content, check_metadata, check_text
from spectron.verification import LogVerification, verify_log

log = logging.getLogger(__name__)
Consistency = Literal["strong", "eventual"]
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4_000
MAX_NAME_CHARS = 500  # an entity name or attribute key in history
MAX_REASON_CHARS = 2_000
# the in-process projectors' own pool: two partitions at once, two vector movers, a backlog look
PROJECTOR_CONNECTIONS = 5
HELP_BATCH = 100  # records a reader applies at a time when it helps projection (_help_project)


class MemoryService:
    """The operations on one runtime (spectron.runtime), and (embedded mode) its projector loops."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.reasoner = runtime.reasoner
        self.reranker = runtime.reranker
        self.pool = runtime.pool
        self.log = runtime.log
        self.embedder = runtime.embedder
        self.extractor = runtime.extractor
        self.context = runtime.context
        self.watch = runtime.watch
        # the embedded log, chosen in the wiring: appends can join a transaction, and this
        # process tails and enriches it; None on Kafka, where the workers do
        self.transactional_log = runtime.transactional_log
        self._tasks: list[asyncio.Task[None]] = []
        self.query_vectors = QueryVectorCache()
        self.recall_tuning = replace(
            DEFAULT_TUNING, neighbour_weight=self.settings.recall_neighbours
        )
        self.projection_watch = ProjectionWatch(runtime.uri)
        self.embedding_pace = Pace()  # measured by this process's embedding pass, if it runs one
        self._helping: dict[int, asyncio.Lock] = {}  # partitions a reader is projecting
        self._replaying = False  # a rebuild or blue-green replay owns the projection
        self._projector_pool: AsyncConnectionPool | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        embedder: Embedder | None = None,
        extractor: Extractor | None = None,
        reasoner: Reasoner | None = None,
        reranker: Reranker | None = None,
    ) -> MemoryService:
        """Open the runtime (database, log, models: spectron.runtime.open_runtime), finish a
        replay that died, and start in-process projectors. Parts not passed come from settings."""
        runtime = await open_runtime(
            settings, embedder=embedder, extractor=extractor, reasoner=reasoner, reranker=reranker
        )
        service = cls(runtime)
        try:
            async with runtime.pool.connection() as conn:
                # a replay that died left its deferred indexes recorded: build them now
                await conn.set_autocommit(True)
                await restore_indexes(conn)
            if settings.projectors_in_process:
                # the projector's own connections: requests never hold the ones it needs
                service._projector_pool = await open_pool(
                    runtime.uri, settings.projection_schema, PROJECTOR_CONNECTIONS
                )
        except BaseException:
            await service.close()
            raise
        if settings.projectors_in_process:
            service.start_projectors()
        return service

    def start_projectors(self) -> None:
        """Run the projection (and, embedded, the enrichment) loops as tasks of this process."""
        projector_pool = self._projector_pool or self.pool
        self._tasks.append(
            asyncio.create_task(run_projection_tailer(projector_pool, self.log, self.context))
        )
        if (embedded := self.transactional_log) is not None:
            for enricher in self.enrichers():
                pace = self.embedding_pace if isinstance(enricher, EmbeddingEnricher) else None
                self._tasks.append(
                    asyncio.create_task(run_enrichment_tailer(self.pool, embedded, enricher, pace))
                )

    @property
    def projectors_running(self) -> bool:
        """Whether this process runs the projector loops now."""
        return bool(self._tasks)

    async def begin_replay(self) -> None:
        """Stop the projector loops, and readers from projecting: a replay owns the projection."""
        self._replaying = True
        await self._stop_tasks()

    def end_replay(self) -> None:
        """A replay is done with the projection (restart the loops with start_projectors)."""
        self._replaying = False

    def enrichers(self) -> list[Enricher]:
        """The enrichment passes this service's configuration asks for."""
        return enrichment_passes(self.embedder, self.extractor)

    async def retry_dead_letters(
        self, positions: Sequence[LogPosition] | None = None
    ) -> RetryReport:
        """Decode dead letters again (all, or those at `positions`); apply and enrich those that do."""
        return await retry_dead_letters(
            self.pool,
            self.context,
            positions,
            event_log=self.log,
            enrichers=self.enrichers(),
            transactional_log=self.transactional_log,
        )

    async def close(self) -> None:
        """Stop the loops, close connections, and release the runtime (and the embedded server)."""
        await self._stop_tasks()
        await self.projection_watch.close()
        try:
            if self._projector_pool is not None:
                await self._projector_pool.close()
        finally:
            await self.runtime.aclose()

    async def _stop_tasks(self) -> None:
        # cancel until done: a cancellation landing inside a pool checkout can be swallowed
        while any(not task.done() for task in self._tasks):
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(self._tasks, timeout=0.1)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()
        self._tasks.clear()

    async def remember(
        self,
        scope: Scope,
        principal: str,
        content: Any,
        memory_category: Any = "knowledge",
        metadata: Any = None,
        facts: Any = None,
    ) -> RememberResult:
        """Validate, then append one MemoryRecorded event; return once the log acknowledged it."""
        event = MemoryRecorded(
            **new_event_fields(canonical_scope(scope), principal),
            payload=MemoryRecordedPayload(
                content=check_content(content),
                memory_category=check_category(memory_category),
                metadata=check_metadata(metadata),
                facts=check_facts(facts),
            ),
        )
        return await self._append_one(event)

    async def _append_one(self, event: MemoryRecorded | EntityTypeRegistered) -> RememberResult:
        """Append one event; its id and where the log put it."""
        [appended] = await self.log.append([event])
        return RememberResult(
            id=event.event_id,
            partition=appended.position.partition,
            offset=appended.position.offset,
            recorded_at=appended.recorded_at,
        )

    async def recall(
        self,
        scope: Scope,
        query: Any,
        top_k: Any = 5,
        memory_category: Any = None,
        metadata: Any = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        mode: RecallMode = "hybrid",
        as_of: AsOf = None,
        after: str | None = None,
        explain: bool = False,
    ) -> RecallResult:
        """Memories visible from `scope` that best match `query`, after catching up with the log.

        A strong read waits for the writes it is owed (spectron.consistency.owed_heads): those
        its scope can see, and `after`, a client's token of its own ('partition:offset,...').
        """
        scope = canonical_scope(scope)
        check_text(query, "query", MAX_QUERY_CHARS)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be an integer from 1 to {MAX_TOP_K}")
        if memory_category is not None:
            check_category(memory_category)
        if metadata is not None:
            check_metadata(metadata)
        if consistency not in ("strong", "eventual"):
            raise InvalidInput("consistency must be 'strong' or 'eventual'")
        if mode not in ("hybrid", "dense", "keyword"):
            raise InvalidInput("mode must be 'hybrid', 'dense' or 'keyword'")
        owed_by_token = parse_token(after)
        if not isinstance(explain, bool):
            raise InvalidInput("explain must be true or false")
        at = await resolve_as_of(as_of, self.log)
        started = time.perf_counter()
        pending = 0
        vector_task = None
        if mode != "keyword":
            vector_task = asyncio.create_task(self._query_vector(query))
        try:
            if consistency == "strong":
                heads = await owed_heads(self.pool, self.log, scope, owed_by_token)
                bound = self.settings.read_timeout if timeout is None else timeout
                pending = await wait_for_projections(
                    self.pool,
                    heads,
                    scope,
                    bound,
                    watch=self.projection_watch,
                    enrichment=self._embedding_pass(),
                    pace=self.embedding_pace,
                    project=self._help_project if self._tasks else None,
                )
            waited_ms = (time.perf_counter() - started) * 1000
            vector = await vector_task if vector_task is not None else None
        finally:
            if vector_task is not None and not vector_task.done():
                vector_task.cancel()
        reranker = self.reranker if mode == "hybrid" else None
        async with self.pool.connection() as conn:
            items = await search(
                conn,
                scope,
                query,
                vector,
                top_k=max(top_k, RERANK_POOL) if reranker is not None else top_k,
                memory_category=memory_category,
                metadata=metadata,
                mode=mode,
                as_of=at,
                explain=explain,
                tuning=self.recall_tuning,
            )
        if reranker is not None:
            items = await reranked(reranker, query, items, top_k)
        return RecallResult(
            items=items,
            formatted=format_items(items, scope, pending),
            pending=pending,
            waited_ms=round(waited_ms, 3),
        )

    async def _help_project(self, partition: int, position: int) -> bool:
        """A reader applies a batch of a partition it is owed writes in; False if none applied.

        The same driver as the projector's (apply_records): the partition's position row is
        locked for the batch, so whoever gets it applies each record once; a reader that finds
        it taken (the projector, or another reader) applies nothing and waits instead. Only
        one reader of this process helps per partition at a time, so readers never hold more
        than a connection per partition.
        """
        if self.transactional_log is None or self._replaying:
            # Kafka: the workers read the topic, this process does not; a rebuild or replay
            # under way stopped the projectors, and owns the projection until it is done
            return False
        lock = self._helping.setdefault(partition, asyncio.Lock())
        if lock.locked():
            return False
        async with lock:
            records = await self.log.read(partition, position, HELP_BATCH)
            if not records:
                return False
            try:
                async with self.pool.connection() as conn:
                    return bool(await apply_records(conn, partition, records, self.context))
            except ProjectionGap:  # the position moved back: the projector reads from it
                return False

    def _embedding_pass(self) -> str | None:
        """The embedding pass whose position readers can see (embedded log), else None."""
        if self.transactional_log is not None:
            return enrichment_consumer(self.embedder)
        return None

    async def _query_vector(self, query: str) -> Vectors:
        """The query's vector: from the cache, else embedded off the event loop and cached."""
        model_id = self.embedder.model_id
        vector = self.query_vectors.get(model_id, query)
        if vector is None:
            embedded = await asyncio.to_thread(self.embedder.embed_query, query)
            vector = self.query_vectors.put(model_id, query, embedded)
        return vector

    async def get_state(
        self,
        scope: Scope,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
        after: str | None = None,
    ) -> State:
        """Entities, attribute chains and relations visible from `scope`, after catching up."""
        scope = canonical_scope(scope)
        at = await resolve_as_of(as_of, self.log)
        pending = await self._facts_caught_up(scope, consistency, timeout, after)
        async with self.pool.connection() as conn, read_snapshot(conn):
            return await load_state(conn, scope, pending, at)

    async def _facts_caught_up(
        self, scope: Scope, consistency: Consistency, timeout: float | None, after: str | None
    ) -> int:
        """Wait (strong) until the facts `scope` is owed are projected; how many are pending."""
        owed_by_token = parse_token(after)
        pending = 0
        if consistency == "strong":
            heads = await owed_heads(self.pool, self.log, scope, owed_by_token)
            bound = self.settings.read_timeout if timeout is None else timeout
            awaiting = AWAITING_FACTS if self.extractor is not None else None
            pending = await wait_for_projections(
                self.pool,
                heads,
                scope,
                bound,
                awaiting,
                self.projection_watch,
                project=self._help_project if self._tasks else None,
            )
        elif consistency != "eventual":
            raise InvalidInput("consistency must be 'strong' or 'eventual'")
        return pending

    async def reflect(
        self,
        scope: Scope,
        principal: str,
        query: Any,
        persist: bool = False,
        top_k: Any = 10,
    ) -> Reflection:
        """Synthesise what `scope` can see about `query`; with persist, record it in the log."""
        scope = canonical_scope(scope)
        recalled = await self.recall(scope, query, top_k)
        state = await self.get_state(scope)
        data = ReflectionInput(query=query, scope=scope, memories=recalled.items, state=state)
        draft = await asyncio.to_thread(self.reasoner.reflect, data)
        reflection = Reflection(
            query=query,
            summary=draft.summary,
            sources=draft.sources,
            uncertain=draft.uncertain,
            reasoner=self.reasoner.reasoner_id,
            scope=scope,
            id=None,
        )
        if not persist:
            return reflection
        event = ReflectionRecorded(
            **new_event_fields(scope, principal),
            payload=ReflectionRecordedPayload(
                query=query,
                summary=draft.summary,
                sources=draft.sources,
                uncertain=draft.uncertain,
                reasoner=self.reasoner.reasoner_id,
            ),
        )
        [appended] = await self.log.append([event])
        return reflection.model_copy(
            update={"persisted": True, "id": event.event_id, "recorded_at": appended.recorded_at}
        )

    async def profile(
        self,
        scope: Scope,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
        after: str | None = None,
    ) -> Profile:
        """Entity state, persisted reflections, contributions and recent memory visible from scope."""
        scope = canonical_scope(scope)
        at = await resolve_as_of(as_of, self.log)
        pending = await self._facts_caught_up(scope, consistency, timeout, after)
        async with self.pool.connection() as conn, read_snapshot(conn):  # counts match the state
            state = await load_state(conn, scope, pending, at)
            return await load_profile(conn, scope, state, pending, at)

    async def history(
        self, scope: Scope, entity: Any, attribute: Any = None, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value of an entity's attributes visible from scope: who, when, which event, what next."""
        scope = canonical_scope(scope)
        check_text(entity, "entity", MAX_NAME_CHARS)
        if attribute is not None:
            check_text(attribute, "attribute", MAX_NAME_CHARS)
        at = await resolve_as_of(as_of, self.log)
        await self.get_state(scope)  # read your writes, as every read does
        async with self.pool.connection() as conn:
            return await attribute_history(conn, scope, entity, attribute, at)

    async def forget(
        self,
        scope: Scope,
        principal: str,
        memory_id: Any = None,
        *,
        target: Scope | None = None,
        where: Any = None,
        reason: str | None = None,
    ) -> ForgetResult:
        """Crypto-shred one memory, or every memory at or below `target` (matching `where`).

        The keys are destroyed and the projections purged in one transaction before this returns,
        so no later read sees the content; the tombstone then records it in the log (embedded: in
        that same transaction). See spectron.forgetting for exactly what is and is not erased.
        """
        scope = canonical_scope(scope)
        if reason is not None:
            check_text(reason, "reason", MAX_REASON_CHARS, blank=True)
        if memory_id is not None and (target is not None or where is not None):
            raise InvalidInput("forget one memory_id, or a scope with filters, not both")
        chosen = canonical_scope(target) if target is not None else scope
        if not is_within(chosen, scope):
            raise InvalidInput("a session can only forget at or below its own scope")
        condition = parse_filter(where)
        if memory_id is not None:
            selector: dict[str, Any] = {"memory_id": str(memory_id)}
        else:
            selector = {"scope": chosen}
            if condition is not None:
                selector["where"] = logged_filter(condition)
                await self.get_state(chosen)  # filters read the projection: read your writes
        embedded_log = self.transactional_log
        async with self.pool.connection() as conn, conn.transaction():
            if memory_id is not None:
                ids = await select_memory(conn, scope, memory_id)
            else:
                ids = await select_scope(conn, chosen, condition)
            if not ids:
                return ForgetResult(forgotten=[], tombstones=[], citing_reflections=[])
            citing = await shred(conn, ids, purge_memories)
            events = tombstones(scope, principal, ids, selector, reason)
            if embedded_log is not None:
                await embedded_log.append_in_transaction(conn, events)
        if embedded_log is None:
            try:
                await self.log.append(events)
            except SpectronError as exc:
                raise LogUnavailable(
                    f"{len(ids)} memories were erased, but their tombstone could not be logged"
                    f" ({exc}); the audit trail lacks it: forget the same selection again"
                ) from exc
        return ForgetResult(
            forgotten=ids,
            tombstones=[event.event_id for event in events],
            citing_reflections=citing,  # forgotten reflections were purged before this was read
        )

    async def register_entity_type(
        self, scope: Scope, principal: str, entity_type: Any
    ) -> RememberResult:
        """Append an EntityTypeRegistered event; extraction at and below `scope` uses it from then on."""
        try:
            definition = EntityType.model_validate(entity_type)
        except ValidationError as exc:
            raise InvalidInput(f"invalid entity type: {exc.errors()[0]['msg']}") from exc
        event = EntityTypeRegistered(
            **new_event_fields(canonical_scope(scope), principal),
            payload=EntityTypeRegisteredPayload(entity_type=definition),
        )
        return await self._append_one(event)

    async def list_memories(
        self,
        scope: Scope,
        *,
        limit: int = 50,
        cursor: str | None = None,
        memory_category: Any = None,
        metadata: Any = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryPage:
        """Memories visible from `scope`, newest first, a page at a time (read-your-writes)."""
        scope = canonical_scope(scope)
        if memory_category is not None:
            check_category(memory_category)
        if metadata is not None:
            check_metadata(metadata)
        at = await resolve_as_of(as_of, self.log)
        await self._read_your_writes(scope, consistency, timeout)
        async with self.pool.connection() as conn:
            return await list_memories(
                conn,
                scope,
                limit=limit,
                cursor=cursor,
                memory_category=memory_category,
                metadata=metadata,
                as_of=at,
            )

    async def get_memory(
        self,
        scope: Scope,
        memory_id: Any,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryRecord:
        """One memory visible from `scope`; MemoryNotFound when there is none (or it was forgotten)."""
        scope = canonical_scope(scope)
        at = await resolve_as_of(as_of, self.log)
        await self._read_your_writes(scope, consistency, timeout)
        async with self.pool.connection() as conn:
            return await get_memory(conn, scope, memory_id, at)

    async def scope_tree(
        self,
        root: Scope,
        as_of: AsOf = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
    ) -> ScopeTree:
        """Scopes holding memories visible from `root` (`{}`: every scope), with counts."""
        root = canonical_scope(root) if root else {}
        at = await resolve_as_of(as_of, self.log)
        await self._read_your_writes(root or None, consistency, timeout)
        async with self.pool.connection() as conn:
            return await scope_tree(conn, root, at)

    async def audit(
        self,
        scope: Scope | None,
        *,
        limit: int = 200,
        principal: str | None = None,
        since: AsOf = None,
        until: AsOf = None,
    ) -> AuditPage:
        """The newest events visible from `scope` (all with None): who did what, when, where."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an integer from 1 to 1000")
        if principal is not None:
            check_text(principal, "principal", MAX_NAME_CHARS)
        return await recent_audit(
            self.log,
            self.pool,
            limit=limit,
            principal=principal,
            scope=canonical_scope(scope) if scope is not None else None,
            since=await resolve_as_of(since, self.log),
            until=await resolve_as_of(until, self.log),
        )

    async def log_status(self) -> LogStatus:
        """Per partition lag, memories awaiting embedding, dead letters."""
        return await log_status(self.pool, self.log)

    async def verify_log(self) -> LogVerification:
        """Check the log's hash chain end to end."""
        return await verify_log(self.log)

    async def _read_your_writes(
        self, scope: Scope | None, consistency: Consistency, timeout: float | None
    ) -> int:
        """Wait (bounded) for the writes this read is owed, as recall and get_state do; listings
        show whether a memory is embedded, so they wait for its projection, not its vector."""
        if consistency == "eventual":
            return 0
        if consistency != "strong":
            raise InvalidInput("consistency must be 'strong' or 'eventual'")
        if scope:
            heads = await owed_heads(self.pool, self.log, scope)
        else:  # every scope: every acknowledged write is owed
            heads = await self.log.end_offsets()
        bound = self.settings.read_timeout if timeout is None else timeout
        return await wait_for_projections(
            self.pool,
            heads,
            scope,
            bound,
            awaiting=None,
            watch=self.projection_watch,
            project=self._help_project if self._tasks else None,
        )
