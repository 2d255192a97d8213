"""Speed at scale: remember, append rate, enrichment, lag, recall, get_state, profile, replay, footprint.

One store grows through the requested sizes (10k, then 100k), and every figure is measured at each
size, so the JSON records how each one moves from 10k to 100k. Scale runs use the hashing embedder:
embedding 100k memories with the default model takes about 40 minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import sql

from benchmarks.bulkload import bulk_append
from benchmarks.http_api import http_figures
from benchmarks.stats import Stopwatch, distribution, postgres_memory_mib, rss_mib
from benchmarks.workload import ScopeTree, TextGenerator
from projectors.enrichment import enrichment_consumer
from spectron import SpectronClient, maintenance
from spectron.client import Session
from spectron.embedding import Embedder
from spectron.extraction import make_extractor
from spectron.positions import PROJECTION_CONSUMER, projection_positions
from spectron.recall import DEFAULT_TUNING, recall_params, recall_sql, search
from spectron.scope import Scope
from spectron.service import MemoryService

if TYPE_CHECKING:
    from spectron.http.client import HttpSession

ENTITY_SCOPE_AGENT = "crm"

# recall as it ranked before issue 15: cover density keyword leg, RRF k=60, pools 50, no neighbours
BEFORE_TUNING = dataclasses.replace(
    DEFAULT_TUNING, neighbour_weight=0.0, bm25=False, rrf_k=60, dense_weight=1.0, dense_pool=50
)


@dataclass(frozen=True)
class SpeedConfig:
    """Sizes and operation counts of one speed run."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    projects: int = 8
    agents: int = 8
    concurrency: int = 8
    backlog: int = 5_000
    warmup: int = 50
    remember_ops: int = 1_000
    recall_ops: int = 300
    state_ops: int = 50
    rate_ops: int = 1_000
    lag_rate: float = 100.0
    ryw_ops: int = 200
    entities: int = 1_000
    superseded: int = 100
    explain: bool = True
    replay: bool = True
    http: bool = True
    modes: tuple[str, ...] = ("hybrid", "dense", "keyword")
    # embedded: each size is reached by bulk-loading the log (benchmarks.bulkload), then the
    # append path is measured on a fixed sample of `append_ops` remembers from `concurrency` agents
    bulk_log: bool = True
    append_ops: int = 2_000
    # ingest with the default extractor: `ingest_ops` memories from `ingest_writers` agents
    ingest_ops: int = 1_000
    ingest_writers: int = 32

    @classmethod
    def tiny(cls) -> SpeedConfig:
        """A smoke-test configuration: 200 memories in 7 scopes, a handful of operations each."""
        return cls(
            sizes=(200,),
            projects=2,
            agents=2,
            concurrency=4,
            backlog=40,
            warmup=3,
            remember_ops=20,
            recall_ops=10,
            state_ops=5,
            rate_ops=20,
            lag_rate=50.0,
            ryw_ops=10,
            entities=20,
            superseded=5,
            append_ops=40,
            ingest_ops=20,
            ingest_writers=4,
        )


class Deployment(Protocol):
    """Where the figures are measured: the embedded default, or Kafka with worker processes."""

    name: str
    embedder: Embedder
    separable_writer: bool

    def live(self) -> SpectronClient:
        """A client whose reads are served by running projectors (in-process or workers)."""
        ...

    def writer(self) -> SpectronClient:
        """A client that appends without projecting (only when `separable_writer`)."""
        ...

    def process_pids(self) -> dict[str, list[int]]:
        """PIDs of API/worker processes, by role, for memory footprint."""
        ...


@dataclass
class _Counter:
    """Where the next memory index comes from (the store grows monotonically)."""

    next_index: int = 0

    def take(self) -> int:
        """Next memory index."""
        index = self.next_index
        self.next_index += 1
        return index


@dataclass
class SpeedRun:
    """State carried across sizes while one store grows."""

    config: SpeedConfig
    deployment: Deployment
    tree: ScopeTree
    text: TextGenerator = field(default_factory=TextGenerator)
    counter: _Counter = field(default_factory=_Counter)
    entities_created: bool = False
    empty_db_bytes: int = 0


def _session(run: SpeedRun, client: SpectronClient, scope: Scope) -> Session | HttpSession:
    """A session at `scope` (cheap: sessions hold no connection)."""
    return client.sessions.create(scope=scope)


async def bulk_remember(
    run: SpeedRun, client: SpectronClient, count: int, concurrency: int | None = None
) -> tuple[list[float], float]:
    """Append `count` memories from `concurrency` concurrent agents; latencies (ms) and seconds."""
    latencies: list[float] = []
    remaining = itertools.count()
    agents = concurrency or run.config.concurrency

    async def agent() -> None:
        while next(remaining) < count:
            index = run.counter.take()
            session = _session(run, client, run.tree.scope_for(index))
            clock = Stopwatch()
            await session.remember(run.text.memory(index), metadata={"i": index})
            latencies.append(clock.ms())

    clock = Stopwatch()
    await asyncio.gather(*(agent() for _ in range(agents)))
    return latencies, clock.seconds()


def _take(run: SpeedRun) -> Callable[[int], range]:
    """Hands out the next n memory indexes of the growing store."""

    def take(n: int) -> range:
        start = run.counter.next_index
        run.counter.next_index += n
        return range(start, start + n)

    return take


async def log_bulk_load(run: SpeedRun, count: int) -> tuple[SpectronClient, dict[str, Any]]:
    """Append `count` memories straight to the log, then start the projectors and time the settle.

    Returns the live client (projectors running) and the figures: the log's append rate, and
    memories settled (projected and embedded) per second from the bulk-loaded log.
    """
    writer = run.deployment.writer()
    clock = Stopwatch()

    def progress(appended: int) -> None:
        if appended % 100_000 == 0:  # a long load says how far it is (stderr)
            print(f"bulk load: {appended:,} appended, {clock.seconds():.0f} s", file=sys.stderr)

    loaded = await bulk_append(writer, run.tree, run.text, _take(run), count, progress)
    await writer.close()
    live = run.deployment.live()
    service = await service_of(live)
    settle = await catch_up(service, bound=86_400.0)  # 1M memories on 2 busy cores: over an hour
    loaded.update(
        settle_seconds=round(settle, 3),
        settled_per_second=round(count / settle, 1) if settle else None,
        note="appended straight to the log in batches, projectors off; then projected + embedded",
    )
    return live, loaded


async def _consumer_positions(service: MemoryService, consumer: str) -> dict[int, int]:
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT partition, next_offset FROM spectron_log.consumer_positions"
            " WHERE consumer = %s",
            [consumer],
        )
        return {int(p): int(n) for p, n in await cur.fetchall()}


async def _wait_consumer(
    service: MemoryService, consumer: str, heads: dict[int, int], bound: float = 3_600.0
) -> None:
    """Wait until a consumer of the log (embedded) has passed `heads` on every partition."""
    deadline = time.monotonic() + bound
    while True:
        if consumer == PROJECTION_CONSUMER:
            async with service.pool.connection() as conn:
                done = await projection_positions(conn)
        else:
            done = await _consumer_positions(service, consumer)
        if all(done.get(p, 0) >= h for p, h in heads.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{consumer} did not reach {heads} within {bound}s")
        await asyncio.sleep(0.02)


async def ingest_with_extractor(run: SpeedRun, uri: str) -> dict[str, Any]:
    """`ingest_ops` memories from `ingest_writers` agents with the default extractor on.

    Settled = appended → projected, embedded and extracted, and the extracted facts projected.
    The extraction pass starts at the log's end: it runs from the first memory in a real store,
    and a bulk-loaded store's backlog is not what this figure is about.
    """
    cfg = run.config
    extractor = make_extractor()
    writer = run.deployment.writer()
    service = await service_of(writer)
    ends = await service.log.end_offsets()
    async with service.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO spectron_log.consumer_positions (consumer, partition, next_offset)"
            " SELECT %s, p, (%s::bigint[])[p + 1] FROM generate_series(0, %s - 1) p"
            " ON CONFLICT (consumer, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            [
                f"extract:{extractor.extractor_id}",
                [ends.get(p, 0) for p in range(len(ends))],
                len(ends),
            ],
        )
    await writer.close()
    client = SpectronClient(database=uri, embedder=run.deployment.embedder, extractor=extractor)
    service = await service_of(client)
    try:
        clock = Stopwatch()
        latencies, seconds = await bulk_remember(run, client, cfg.ingest_ops, cfg.ingest_writers)
        heads = await service.log.end_offsets()
        for consumer in (
            PROJECTION_CONSUMER,
            enrichment_consumer(run.deployment.embedder),
            f"extract:{extractor.extractor_id}",
        ):
            await _wait_consumer(service, consumer, heads)
        # the facts and vectors the passes appended, projected too
        await _wait_consumer(service, PROJECTION_CONSUMER, await service.log.end_offsets())
        settled = clock.seconds()
    finally:
        await client.close()
    return {
        "memories": cfg.ingest_ops,
        "writers": cfg.ingest_writers,
        "extractor": extractor.extractor_id,
        "append_seconds": round(seconds, 3),
        "remember_latency": distribution(latencies),
        "settled_seconds": round(settled, 3),
        "settled_per_second": round(cfg.ingest_ops / settled, 1),
    }


async def service_of(client: SpectronClient) -> MemoryService:
    """The client's running service."""
    return await client.service()


async def memory_count(service: MemoryService) -> int:
    """Memories in the projection."""
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM memories")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def catch_up(service: MemoryService, bound: float = 3_600.0) -> float:
    """Wait until projections and embeddings cover the log; return seconds waited."""
    clock = Stopwatch()
    missing = await maintenance.catch_up(service, bound)
    if missing:
        raise RuntimeError(f"{missing} memories still unembedded after {bound}s")
    return clock.seconds()


def raw_embedding_rate(embedder: Embedder, texts: list[str], batch: int = 32) -> dict[str, Any]:
    """The model alone: passages/s embedding `texts` in batches of `batch` (what the enricher uses)."""
    embedder.embed_passages(texts[:batch])  # warm-up (model load)
    clock = Stopwatch()
    for start in range(0, len(texts), batch):
        embedder.embed_passages(texts[start : start + batch])
    seconds = clock.seconds()
    return {
        "passages": len(texts),
        "batch": batch,
        "seconds": round(seconds, 3),
        "per_second": round(len(texts) / seconds, 1),
    }


async def sequential_remember(run: SpeedRun, client: SpectronClient) -> dict[str, Any]:
    """One agent, one remember at a time, after warm-up: latency until the log acknowledged."""
    leaves = run.tree.leaf_scopes
    latencies: list[float] = []
    for n in range(run.config.warmup + run.config.remember_ops):
        index = run.counter.take()
        session = _session(run, client, leaves[n % len(leaves)])
        clock = Stopwatch()
        await session.remember(run.text.memory(index), metadata={"i": index})
        if n >= run.config.warmup:
            latencies.append(clock.ms())
    return distribution(latencies)


async def offered_load_lag(
    run: SpeedRun, client: SpectronClient, uri: str, schema: str
) -> dict[str, Any]:
    """Remember at a paced rate; time from acknowledgement to projected (keyword) and embedded (dense).

    A poller on its own connection looks the acknowledged ids up every 2 ms.
    """
    rate, ops = run.config.lag_rate, run.config.rate_ops
    leaves = run.tree.leaf_scopes
    acked: dict[Any, float] = {}
    projected: dict[Any, float] = {}
    embedded: dict[Any, float] = {}
    ack_ms: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        query = sql.SQL(
            "SELECT memory_id, embedding IS NOT NULL FROM {}.memories WHERE memory_id = ANY(%s)"
        ).format(sql.Identifier(schema))
        async with await psycopg.AsyncConnection.connect(uri, autocommit=True) as conn:
            while True:
                waiting = [m for m in acked if m not in embedded]
                if waiting:
                    cur = await conn.execute(query, [waiting])
                    now = time.perf_counter()
                    for memory_id, has_vector in await cur.fetchall():
                        projected.setdefault(memory_id, now)
                        if has_vector:
                            embedded.setdefault(memory_id, now)
                elif done.is_set():
                    return
                await asyncio.sleep(0.002)

    async def one(n: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        index = run.counter.take()
        session = _session(run, client, leaves[(n * 13) % len(leaves)])
        started = time.perf_counter()
        result = await session.remember(run.text.memory(index), metadata={"i": index})
        now = time.perf_counter()
        ack_ms.append((now - started) * 1000)
        acked[result.id] = now

    poller = asyncio.create_task(poll())
    start = time.perf_counter() + 0.05
    try:
        await asyncio.gather(*(one(n, start + n / rate) for n in range(ops)))
        done.set()
        await asyncio.wait_for(poller, timeout=600)
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    warm = list(acked)[run.config.warmup :]  # skip the first ones (connections, caches)
    return {
        "offered_per_second": rate,
        "memories": ops,
        "remember_ack": distribution(ack_ms[run.config.warmup :]),
        "keyword_visible": distribution([(projected[m] - acked[m]) * 1000 for m in warm]),
        "dense_visible": distribution([(embedded[m] - acked[m]) * 1000 for m in warm]),
    }


async def read_your_writes(run: SpeedRun, client: SpectronClient) -> dict[str, Any]:
    """remember, then at once a strong recall for its unique words: how long recall waited, and hits."""
    leaves = run.tree.leaf_scopes
    waited: list[float] = []
    total: list[float] = []
    found = 0
    ops = run.config.ryw_ops
    for n in range(run.config.warmup + ops):
        index = run.counter.take()
        token = f"ryw{index}marker"
        session = _session(run, client, leaves[(n * 5) % len(leaves)])
        result = await session.remember(f"{run.text.memory(index)} {token}")
        clock = Stopwatch()
        recalled = await session.recall(token, top_k=5)
        if n >= run.config.warmup:
            total.append(clock.ms())
            waited.append(recalled.waited_ms)
            found += any(item.id == result.id for item in recalled.items)
    return {
        "recall_total": distribution(total),
        "recall_waited": distribution(waited),
        "found": found,
        "ops": ops,
    }


async def recall_latencies(
    run: SpeedRun, client: SpectronClient, queries: list[str]
) -> dict[str, Any]:
    """End-to-end recall (strong, top_k=10) per scope level and mode, plus the SQL alone (hybrid)."""
    service = await service_of(client)
    leaf = run.tree.leaf_scopes[0]
    out: dict[str, Any] = {}
    for level, scope in (("leaf", leaf), ("org", run.tree.org_scope)):
        session = _session(run, client, scope)
        for mode in run.config.modes:
            samples: list[float] = []
            hits: list[int] = []
            for n, query in enumerate(queries[: run.config.warmup + run.config.recall_ops]):
                clock = Stopwatch()
                result = await session.recall(query, top_k=10, mode=mode)  # type: ignore[arg-type]
                if n >= run.config.warmup:
                    samples.append(clock.ms())
                    hits.append(len(result.items))
            out[f"{level}_{mode}"] = {
                **distribution(samples),
                "mean_items": round(sum(hits) / max(len(hits), 1), 2),
            }
        # the SQL alone, today's recall and recall as it ranked before issue 15 (cover density,
        # RRF k=60, no neighbours), interleaved so that both see the same machine
        sql_only: dict[str, list[float]] = {"": [], "_before": []}
        for n, query in enumerate(queries[: run.config.warmup + run.config.recall_ops]):
            vector = service.embedder.embed_query(query)
            for suffix, tuning in (("", DEFAULT_TUNING), ("_before", BEFORE_TUNING)):
                clock = Stopwatch()
                async with service.pool.connection() as conn:
                    await search(conn, scope, query, vector, top_k=10, tuning=tuning)
                if n >= run.config.warmup:
                    sql_only[suffix].append(clock.ms())
        for suffix, samples in sql_only.items():
            out[f"{level}_hybrid_sql_only{suffix}"] = distribution(samples)
    return out


async def explain_recall(
    service: MemoryService, tree: ScopeTree, query: str
) -> dict[str, dict[str, Any]]:
    """EXPLAIN ANALYZE of the hybrid recall query at a leaf and at the org; flags sequential scans."""
    vector = service.embedder.embed_query(query)
    out: dict[str, dict[str, Any]] = {}
    for level, scope in (("leaf", tree.leaf_scopes[0]), ("org", tree.org_scope)):
        params = recall_params(scope, query, vector, top_k=10)
        async with service.pool.connection() as conn, conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")  # as search
            await conn.execute("SET LOCAL hnsw.ef_search = 100")
            query_sql = await recall_sql(conn, scope, params)
            cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query_sql, params)
            plan = "\n".join(row[0] for row in await cur.fetchall())
        plan = re.sub(r"'\[[^\]]*\]'::(half)?vector", "'[…]'::vector", plan)
        out[level] = {
            "seq_scans": [line.strip() for line in plan.splitlines() if "Seq Scan" in line],
            "execution_ms": float(m.group(1))
            if (m := re.search(r"Execution Time: ([0-9.]+) ms", plan))
            else None,
            "uses_hnsw": "memories_embedding" in plan,
            "plan": plan,
        }
    return out


async def create_entities(run: SpeedRun, client: SpectronClient) -> Scope:
    """A leaf scope with `entities` Customer entities (explicit facts), some attributes superseded."""
    scope = {**run.tree.project_scopes[0], "agent": ENTITY_SCOPE_AGENT}
    session = _session(run, client, scope)
    count = run.config.entities
    regions = ["emea", "amer", "apac"]

    async def one(i: int, tier: str) -> None:
        customer = {"type": "Customer", "name": f"customer-{i:04d}"}
        facts: list[dict[str, Any]] = [
            customer,
            {"entity": customer, "key": "tier", "value": tier},
            {"entity": customer, "key": "region", "value": regions[i % 3]},
        ]
        if i % 10 == 1:
            facts.append(
                {
                    "subject": customer,
                    "predicate": "referred_by",
                    "object": {"type": "Customer", "name": f"customer-{i - 1:04d}"},
                }
            )
        await session.remember(f"customer-{i:04d} is on the {tier} tier.", facts=facts)

    for start in range(0, count, 50):
        await asyncio.gather(*(one(i, "pro") for i in range(start, min(start + 50, count))))
    # later values supersede the earlier ones for some customers
    await asyncio.gather(*(one(i, "enterprise") for i in range(min(run.config.superseded, count))))
    return scope


async def timed(ops: int, warmup: int, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """p50/p95/p99 of `call` over `ops` calls after `warmup` calls."""
    samples: list[float] = []
    for n in range(warmup + ops):
        clock = Stopwatch()
        await call()
        if n >= warmup:
            samples.append(clock.ms())
    return distribution(samples)


async def database_size(service: MemoryService) -> int:
    """pg_database_size of the service's database, bytes."""
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT pg_database_size(current_database())")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def footprint(
    service: MemoryService, memories: int, empty_bytes: int, pids: dict[str, list[int]]
) -> dict[str, Any]:
    """Database size (total, per 1,000 memories above the empty schema, largest relations), RSS."""
    async with service.pool.connection() as conn:
        cur = await conn.execute("SELECT pg_database_size(current_database()), pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        size, backend = int(row[0]), int(row[1])
        cur = await conn.execute(
            "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('spectron', 'spectron_log') AND c.relkind IN ('r', 'i')"
            " ORDER BY 2 DESC LIMIT 8"
        )
        relations = {name: round(int(b) / 2**20, 1) for name, b in await cur.fetchall()}
    return {
        "memories": memories,
        "db_size_mib": round(size / 2**20, 1),
        "db_empty_mib": round(empty_bytes / 2**20, 1),
        "db_mib_per_1000_memories": round(
            (size - empty_bytes) / 2**20 / max(memories, 1) * 1000, 3
        ),
        "largest_relations_mib": relations,
        "process_rss_mib": {
            role: [rss_mib(pid) for pid in role_pids] for role, role_pids in pids.items()
        },
        "postgres": postgres_memory_mib(backend),
    }


async def vacuum_analyze(service: MemoryService) -> float:
    """VACUUM (ANALYZE) the projection, as autovacuum would within a minute; return seconds."""
    clock = Stopwatch()
    async with service.pool.connection() as conn:
        await conn.set_autocommit(True)
        for table in ("memories", "entities", "attribute_values", "relations"):
            await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        await conn.set_autocommit(False)
    return clock.seconds()


async def replay_figures(service: MemoryService) -> dict[str, Any]:
    """Drop the projections, replay the log from offset 0 (no re-embedding); hash before and after."""
    clock = Stopwatch()
    before = await maintenance.state_hash(service)
    hash_seconds = clock.seconds()
    report = await maintenance.rebuild(service)
    after = await maintenance.state_hash(service)
    return {
        "events": report.events,
        "seconds": round(report.seconds, 3),
        "events_per_second": round(report.events_per_second, 1),
        "state_hash_seconds": round(hash_seconds, 3),
        "hash_equal": before == after,
    }


async def recall_as_met(
    run: SpeedRun, client: SpectronClient, queries: list[str]
) -> dict[str, Any]:
    """Hybrid recall at a leaf and at the org, end to end and SQL alone, with no VACUUM before."""
    service = await service_of(client)
    out: dict[str, Any] = {}
    for level, scope in (("leaf", run.tree.leaf_scopes[0]), ("org", run.tree.org_scope)):
        session = _session(run, client, scope)
        ends: list[float] = []
        sqls: list[float] = []
        for n, query in enumerate(queries[: run.config.warmup + run.config.recall_ops]):
            clock = Stopwatch()
            await session.recall(query, top_k=10)
            end_ms = clock.ms()
            vector = service.embedder.embed_query(query)
            clock = Stopwatch()
            async with service.pool.connection() as conn:
                await search(conn, scope, query, vector, top_k=10)
            if n >= run.config.warmup:
                ends.append(end_ms)
                sqls.append(clock.ms())
        out[f"{level}_hybrid"] = distribution(ends)
        out[f"{level}_hybrid_sql_only"] = distribution(sqls)
    return out


async def statistics_state(service: MemoryService) -> dict[str, Any]:
    """When `memories` was last analyzed (by the system or autovacuum), and its rows then."""
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT last_analyze, last_autoanalyze, n_live_tup, n_mod_since_analyze,"
            " (SELECT reltuples FROM pg_class WHERE oid = 'memories'::regclass)"
            " FROM pg_stat_user_tables WHERE relname = 'memories'"
        )
        row = await cur.fetchone()
    if row is None:
        return {}
    return {
        "last_analyze": str(row[0]),
        "last_autoanalyze": str(row[1]),
        "live_rows": int(row[2]),
        "modified_since_analyze": int(row[3]),
        "planner_rows": float(row[4]),
    }


async def measure_size(
    run: SpeedRun,
    size: int,
    uri: str,
    schema: str,
    figures: dict[str, Any],
    saved: Callable[[], None] = lambda: None,
) -> None:
    """Grow the store to `size` memories and measure every figure there, into `figures`.

    `saved()` is called after each phase, so a run stopped part-way through a size keeps what that
    size has measured so far (a 1M point takes over an hour).
    """
    cfg, deployment = run.config, run.deployment
    figures["target_memories"] = size
    live = deployment.live()
    service = await service_of(live)
    current = await memory_count(service)
    if not run.empty_db_bytes:  # before the first load (Kafka: only the warm-up memory)
        run.empty_db_bytes = await database_size(service)
    writer_possible = deployment.separable_writer
    bulk_log = cfg.bulk_log and writer_possible
    per_step = cfg.warmup * 3 + cfg.remember_ops + cfg.rate_ops * 2 + cfg.ryw_ops * 2
    if bulk_log:
        per_step += cfg.append_ops + cfg.ingest_ops
    if not run.entities_created:
        per_step += cfg.entities + cfg.superseded
    backlog = min(cfg.backlog, max(size - current - per_step, 0) // 2) if writer_possible else 0
    bulk = max(size - current - per_step - backlog, 0)

    if bulk_log:
        # 1. the store grows by the log's bulk load, then the projectors settle it
        if bulk:
            await live.close()
            live, figures["log_bulk_load"] = await log_bulk_load(run, bulk)
            service = await service_of(live)
            saved()
        # 2. as a user meets the store right after: no VACUUM, statistics as the system left them
        figures["statistics_as_met"] = await statistics_state(service)
        queries = run.text.queries(cfg.warmup + cfg.recall_ops, seed=size + 1)
        figures["as_met"] = {
            "recall": await recall_as_met(run, live, queries),
            "lag": await offered_load_lag(run, live, uri, schema),
            "read_your_writes": await read_your_writes(run, live),
        }
        saved()
        await catch_up(service)
        # 3. sustained appends from `concurrency` agents, projectors running
        latencies, seconds = await bulk_remember(run, live, cfg.append_ops)
        drained = await catch_up(service)
        appended = cfg.append_ops
    else:
        latencies, seconds = await bulk_remember(run, live, bulk)
        drained = await catch_up(service)
        appended = bulk
    figures["bulk_load"] = {
        "memories": appended,
        "concurrent_agents": cfg.concurrency,
        "seconds": round(seconds, 3),
        "appends_per_second": round(appended / seconds, 1) if seconds else None,
        "remember_latency_under_load": distribution(latencies),
        "projected_and_embedded_per_second": round(appended / (seconds + drained), 1)
        if appended
        else None,
    }

    # 4. enrichment on a backlog: append with projectors stopped, then time the drain
    if backlog:
        await live.close()
        writer = deployment.writer()
        assert writer is not None
        start_index = run.counter.next_index
        _, append_seconds = await bulk_remember(run, writer, backlog)
        await writer.close()
        texts = [run.text.memory(i) for i in range(start_index, start_index + min(backlog, 2000))]
        raw = raw_embedding_rate(deployment.embedder, texts)
        live = deployment.live()
        service = await service_of(live)
        drain = await catch_up(service)
        figures["enrichment"] = {
            "embedder": deployment.embedder.model_id,
            "backlog": backlog,
            "backlog_append_seconds": round(append_seconds, 3),
            "drain_seconds": round(drain, 3),
            "drain_per_second": round(backlog / drain, 1),
            "raw_model": raw,
            "ratio_to_raw": round(backlog / drain / raw["per_second"], 3),
            "note": "drain = project MemoryRecorded + embed + append + project MemoryEmbedded",
        }
        saved()

    # 5. ingest with the default extractor, 32 writers (embedded: a client of its own)
    if bulk_log and cfg.ingest_ops:
        await live.close()
        figures["ingest_extracting"] = await ingest_with_extractor(run, uri)
        saved()
        live = deployment.live()
        service = await service_of(live)

    # steady state: statistics exist (a freshly loaded table has none until autovacuum runs)
    figures["vacuum_analyze_seconds"] = round(await vacuum_analyze(service), 3)

    # 6. remember latency, one agent at a time
    figures["remember"] = await sequential_remember(run, live)
    # their vectors first: the lag test starts with no backlog, like the one measured as met
    await catch_up(service)
    # 7. remember → visible lag at an offered rate, and read-your-writes through recall
    figures["lag"] = await offered_load_lag(run, live, uri, schema)
    figures["read_your_writes"] = await read_your_writes(run, live)
    saved()
    await catch_up(service)

    # 8. get_state and profile
    if not run.entities_created:
        entity_scope = await create_entities(run, live)
        run.entities_created = True
    else:
        entity_scope = {**run.tree.project_scopes[0], "agent": ENTITY_SCOPE_AGENT}
    await catch_up(service)
    await vacuum_analyze(service)
    memories = await memory_count(service)
    figures["memories"] = memories

    # 9. recall latency
    queries = run.text.queries(cfg.warmup + cfg.recall_ops, seed=size)
    figures["recall"] = await recall_latencies(run, live, queries)
    if cfg.http and writer_possible:
        figures["http"] = await http_figures(
            uri, run.tree, queries, run.text, cfg.warmup, cfg.recall_ops
        )
    if cfg.explain:
        figures["explain"] = await explain_recall(service, run.tree, queries[0])
    saved()

    state_session = _session(run, live, entity_scope)
    state = await state_session.get_state()
    figures["get_state"] = {
        "entities": len(state.entities),
        "attributes": sum(len(e.attributes) for e in state.entities),
        "relations": len(state.relations),
        **await timed(cfg.state_ops, cfg.warmup // 5 or 1, state_session.get_state),
    }
    org_session = _session(run, live, run.tree.org_scope)
    figures["profile"] = {
        "entity_scope": await timed(cfg.state_ops, cfg.warmup // 5 or 1, state_session.profile),
        "org": await timed(cfg.state_ops, cfg.warmup // 5 or 1, org_session.profile),
    }

    # 10. footprint, then 11. replay (embedded only: rebuild replays the embedded log)
    figures["footprint"] = await footprint(
        service, memories, run.empty_db_bytes, deployment.process_pids()
    )
    saved()
    if cfg.replay and writer_possible:
        figures["replay"] = await replay_figures(service)
    await live.close()


async def run_speed(
    config: SpeedConfig,
    deployment: Deployment,
    uri: str,
    schema: str = "spectron",
    measured: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every figure at every size of `config`, on one growing store.

    `measured(results)` is called after each phase of each size (a long run saves what it has so
    far; a size cut short is marked `"partial": true`).
    """
    run = SpeedRun(config, deployment, ScopeTree(config.projects, config.agents))
    random.seed(0)
    results: dict[str, Any] = {
        "config": asdict(config),
        "deployment": deployment.name,
        "embedder": deployment.embedder.model_id,
        "scopes": len(run.tree.all_scopes) + 1,
        "scope_tree": f"1 org → {config.projects} projects → {config.agents} agents each"
        " (+1 leaf holding the entities)",
        "sizes": {},
    }
    for size in sorted(config.sizes):
        clock = Stopwatch()
        print(f"speed: measuring at {size:,} memories", file=sys.stderr)
        figures: dict[str, Any] = {"partial": True}
        results["sizes"][str(size)] = figures

        def saved() -> None:
            if measured is not None:
                measured(results)

        await measure_size(run, size, uri, schema, figures, saved)
        del figures["partial"]
        figures["wall_seconds"] = round(clock.seconds(), 1)
        saved()
    return results
