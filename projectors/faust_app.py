"""Kafka-mode driver: faust-streaming agents that project the log into Postgres and embed memories.

One worker process runs several faust apps, each its own consumer group, so a slow model never
holds back the projections that read-your-writes waits for:

* `spectron-projectors-<topic>` applies records with `apply_records`, whose Postgres transaction
  also stores the position: a redelivered record is skipped, so each is applied exactly once.
* `spectron-chain-<topic>` links each partition's records into the hash chain that makes the topic
  tamper-evident (spectron.log.kafka_chain); the head it moves is its position.
* `spectron-<enricher name>-<topic>`, one per enricher (embedding, fact extraction), turns
  `MemoryRecorded` and `ReflectionRecorded` events into derived events appended to the log. At
  least once: the projector keeps the first vector (or facts) of a memory. A new model is a new
  name, so a new group that starts from the beginning of the log: a new pass.

Kafka's committed offsets are only a hint. Faust acks a batch even when its processing was
cancelled or failed, so a group can resume past records never applied; both agents compare the
first offset they are handed with the position stored in Postgres and read any gap from the log.
Run as `spectron worker`, or `python -m projectors.faust_app` with the SPECTRON_* variables.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
import mode
from faust.transport.drivers import aiokafka as faust_kafka
from psycopg_pool import AsyncConnectionPool

from projectors.base import ProjectionContext
from projectors.driver import ProjectionGap, apply_records
from projectors.enrichment import Enricher, enrichment_passes
from projectors.enrichment_input import ENRICHED_TYPES, record_type
from projectors.vector_index import run_vector_index
from spectron.config import Settings
from spectron.db import STORE_RETRY
from spectron.embedding import Embedder, make_embedder
from spectron.errors import (
    ContentForgotten,
    LogUnavailable,
    MalformedEvent,
    SpectronError,
    StoreUnavailable,
)
from spectron.events import LogPosition, MemoryLike, MemoryRecorded, ReflectionRecorded
from spectron.log import RawRecord, decode_record
from spectron.log.kafka import FETCH_MAX_WAIT_MS, KafkaEventLog, record_time
from spectron.log.kafka_chain import chain_head, extend_chain
from spectron.positions import enrichment_position, projection_positions, raise_enrichment_position
from spectron.runtime import Runtime, open_runtime
from spectron.sealing import drop_forgotten, unseal

log = logging.getLogger(__name__)
BATCH = 500  # records per partition per transaction
BATCH_WINDOW = 0.02  # seconds a batch waits to fill: bounds the added read-your-writes latency
# Kafka's smallest default session timeout; a broker may hold a group join for half of it
SESSION_TIMEOUT = 6.0
MAX_BACKOFF = 30.0
STOP_GRACE = 5.0  # seconds faust gets to stop cleanly after SIGTERM (then: exit anyway)

Apply = Callable[[int, Sequence[RawRecord]], Awaitable[None]]
T = TypeVar("T")


@dataclass
class Processors:
    """What the agents share: the database, the log (for gaps and appends) and the enrichers."""

    runtime: Runtime
    event_log: KafkaEventLog
    enrichers: Sequence[Enricher]

    @classmethod
    async def open(
        cls, settings: Settings, embedder: Embedder, enrichers: Sequence[Enricher] | None = None
    ) -> Processors:
        """Open the runtime on Kafka (migrating the database, pinning the embedding model and
        creating the topic); `enrichers` default to the passes the settings configure."""
        if settings.kafka_bootstrap is None or settings.database_url is None:
            raise SpectronError("a worker needs SPECTRON_KAFKA_BOOTSTRAP and SPECTRON_DATABASE_URL")
        runtime = await open_runtime(settings, embedder=embedder)
        event_log = runtime.log
        assert isinstance(event_log, KafkaEventLog)  # settings.kafka_bootstrap chose it
        if enrichers is None:
            # as MemoryService.enrichers runs them in embedded mode
            enrichers = enrichment_passes(runtime.embedder, runtime.extractor)
        return cls(runtime, event_log, enrichers)

    @property
    def settings(self) -> Settings:
        """The worker's settings."""
        return self.runtime.settings

    @property
    def pool(self) -> AsyncConnectionPool:
        """The worker's connections to Postgres."""
        return self.runtime.pool

    @property
    def ctx(self) -> ProjectionContext:
        """The projection context pinned to the embedding model."""
        return self.runtime.context

    async def close(self) -> None:
        """Disconnect from Kafka and Postgres."""
        await self.runtime.aclose()

    async def project(self, partition: int, records: Sequence[RawRecord]) -> None:
        """Apply one partition's batch (and any gap before it), retrying until Postgres takes it."""
        while True:
            async with self.pool.connection() as conn:
                position = (await projection_positions(conn)).get(partition, 0)
            try:
                await self._with_gap(partition, records, position, self._apply)
                return
            except ProjectionGap as gap:
                # the position moved back (a replay's switch): fill from where it is now
                log.info("%s; filling from the projection's position", gap)

    async def _apply(self, partition: int, records: Sequence[RawRecord]) -> None:
        async def attempt() -> None:
            async with self.pool.connection() as conn:
                await apply_records(conn, partition, records, self.ctx, wait=True)

        await _retry(f"projecting partition {partition}", attempt)

    async def chain(self, partition: int, records: Sequence[RawRecord]) -> None:
        """Link one partition's batch (and any gap before it) into the log's hash chain."""
        async with self.pool.connection() as conn:
            head = await chain_head(conn, partition)
        await self._with_gap(partition, records, head.next_offset, self._chain)

    async def _chain(self, partition: int, records: Sequence[RawRecord]) -> None:
        async def attempt() -> None:
            async with self.pool.connection() as conn:
                await extend_chain(conn, partition, records)

        await _retry(f"chaining partition {partition}", attempt)

    async def enrich(
        self, enricher: Enricher, partition: int, records: Sequence[RawRecord]
    ) -> None:
        """Run one enricher over a partition's batch (and any gap before it); append its output."""
        async with self.pool.connection() as conn:
            position = await enrichment_position(conn, enricher.name, partition)
        await self._with_gap(
            partition, records, position, functools.partial(self._enrich, enricher)
        )

    async def _enrich(
        self, enricher: Enricher, partition: int, records: Sequence[RawRecord]
    ) -> None:
        # only memories are enriched: the derived records are not opened (projectors.enrichment_input)
        wanted = [record for record in records if record_type(record) in ENRICHED_TYPES]

        async def open_sealed() -> list[RawRecord]:
            async with self.pool.connection() as conn:
                return await unseal(conn, wanted)

        memories: list[MemoryLike] = []
        for record in await _retry(f"opening partition {partition}'s records", open_sealed):
            try:
                event = decode_record(record).event
            except (MalformedEvent, ContentForgotten):
                continue  # the projector dead-letters it, or it is forgotten: nothing to enrich
            # reflections are embedded too (the extractor skips them itself), as in embedded mode
            if isinstance(event, MemoryRecorded | ReflectionRecorded):
                memories.append(event)
        for start in range(0, len(memories), enricher.batch_size):
            chunk = memories[start : start + enricher.batch_size]

            async def attempt(chunk: list[MemoryLike] = chunk) -> None:
                async with self.pool.connection() as conn:
                    derived = await drop_forgotten(conn, await enricher.enrich(conn, chunk))
                await self.event_log.append(derived)

            await _retry(
                f"{enricher.name} on {len(chunk)} memories of partition {partition}", attempt
            )

        async def advance() -> None:
            # the output is in the log now; a crash before this line only enriches again
            async with self.pool.connection() as conn:
                await raise_enrichment_position(
                    conn, enricher.name, partition, records[-1].position.offset + 1
                )

        await _retry(f"storing the position of {enricher.name} on partition {partition}", advance)

    async def _with_gap(
        self, partition: int, records: Sequence[RawRecord], position: int, apply: Apply
    ) -> None:
        """Apply the batch in offset order, reading any record missing before or within it from
        the log: a consumer may hand a batch that skips offsets (after a rebalance, say)."""
        # records before the stored position were handled already (a redelivery)
        pending = sorted(
            {r.position.offset: r for r in records if r.position.offset >= position}.items()
        )
        run: list[RawRecord] = []
        for offset, record in pending:
            if offset > position and run:
                await apply(partition, run)
                run = []
            while position < offset:
                missing = await _retry(
                    f"reading a gap of partition {partition}",
                    functools.partial(self._read_gap, partition, position, offset),
                )
                log.info(
                    "filled records %s..%s of partition %s from the log",
                    position,
                    offset,
                    partition,
                )
                await apply(partition, missing)
                position = missing[-1].position.offset + 1
            run.append(record)
            position = offset + 1
        if run:
            await apply(partition, run)

    async def _read_gap(self, partition: int, start: int, end: int) -> list[RawRecord]:
        found = await self.event_log.read(partition, start, BATCH)
        missing = [r for r in found if r.position.offset < end]
        if not missing:
            # a slow broker, not the end: these records exist (had retention deleted them, the
            # read would have started at the oldest record kept instead)
            raise LogUnavailable(f"records {start}..{end - 1} of partition {partition} are late")
        return missing


async def _retry(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it succeeds, backing off exponentially; log every failure.

    An exception must never escape an agent: faust would ack the batch and move on without it.
    """
    delay = 0.5
    while True:
        try:
            return await attempt()
        except ProjectionGap:  # not a failure: the caller reads again from the stored position
            raise
        except StoreUnavailable as exc:  # the watch says when Postgres is back: no backoff
            log.info("%s waits for the database (%s)", what, exc)
            await asyncio.sleep(STORE_RETRY)
        except Exception as exc:  # CancelledError is not an Exception: shutdown still works
            log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)


def to_records(events: Sequence[Any]) -> dict[int, list[RawRecord]]:
    """Group a faust batch by partition, in offset order, as the log's raw records."""
    grouped: dict[int, dict[int, RawRecord]] = defaultdict(dict)
    for event in events:
        message = event.message
        grouped[message.partition][message.offset] = RawRecord(
            LogPosition(message.partition, message.offset),
            # faust gives seconds (ms / 1000); KafkaEventLog.read must agree to the microsecond
            record_time(round(message.timestamp * 1000)),
            message.key,
            message.value if message.value is not None else b"",
        )
    return {p: [by_offset[o] for o in sorted(by_offset)] for p, by_offset in grouped.items()}


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # faust hard-codes a 1.5 s fetch long-poll; some brokers (Tansu) hold new records for
        # most of it, which every read-your-writes recall would then wait for
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_kafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_kafka.Transport):
    Consumer = _Consumer


def projection_group(topic: str) -> str:
    """Faust app id (= consumer group) of the projections of a topic."""
    return f"spectron-projectors-{topic}"


def chain_group(topic: str) -> str:
    """Faust app id (= consumer group) of the chainer of a topic."""
    return f"spectron-chain-{topic}"


def enrichment_group(topic: str, enricher: str) -> str:
    """Faust app id of one enricher: it names internal topics too, so only topic-safe characters."""
    return f"spectron-{re.sub(r'[^A-Za-z0-9._-]', '_', enricher)}-{topic}"


def faust_datadir(home: Path, app_id: str) -> str:
    """Where faust keeps an app's local data: under SPECTRON_HOME, not the working directory.

    We keep no tables, but faust makes its directories anyway (by default `<app_id>-data` in
    whatever directory the worker was started from). It makes one level only: the parents here.
    """
    parent = home.expanduser() / "faust"
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent / app_id).replace("{", "{{").replace("}", "}}")  # faust formats it


def make_app(processors: Processors, app_id: str, handle: Apply) -> faust.App:
    """A faust app whose one agent hands each partition's share of a batch to `handle`."""
    settings = processors.settings
    assert settings.kafka_bootstrap is not None
    app = faust.App(
        app_id,
        datadir=faust_datadir(settings.home, app_id),
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=processors.event_log.partitions,
        web_enabled=False,  # no port: several workers run side by side on one machine
        autodiscover=False,
        broker_session_timeout=SESSION_TIMEOUT,
        broker_heartbeat_interval=SESSION_TIMEOUT / 6,
        table_standby_replicas=0,  # no tables: the plain round-robin assignor is enough
        consumer_auto_offset_reset="earliest",
        loop=asyncio.get_running_loop(),
    )
    # set before anything asks the app for its transport (declaring a topic does)
    app.transport = _Transport(app.conf.broker_consumer, app)
    topic = app.topic(
        processors.event_log.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def agent(stream: faust.StreamT[bytes]) -> None:
        # agents are handed a faust.Stream; only its protocol (StreamT) lacks take_events
        batches = cast(faust.Stream[bytes], stream).take_events(BATCH, within=BATCH_WINDOW)
        async for events in batches:
            for partition, records in to_records(events).items():
                await _retry(
                    f"{app_id} on partition {partition}",
                    functools.partial(handle, partition, records),
                )

    app.agent(topic, name=f"{app_id}-agent")(agent)
    return app


class _Concurrently(mode.Service):
    """Starts and stops faust apps side by side: each start waits seconds for its group join."""

    def __init__(self, apps: Sequence[faust.App]) -> None:
        super().__init__()
        self._apps = list(apps)

    async def on_start(self) -> None:
        await asyncio.gather(*(app.maybe_start() for app in self._apps))

    async def on_stop(self) -> None:
        await asyncio.gather(*(app.stop() for app in self._apps))


async def serve(
    settings: Settings, embedder: Embedder, enrichers: Sequence[Enricher] | None = None
) -> None:
    """Run the projection and enrichment apps in this process until SIGTERM or SIGINT."""
    processors = await Processors.open(settings, embedder, enrichers)
    try:
        topic = processors.event_log.topic
        apps = [
            make_app(processors, projection_group(topic), processors.project),
            make_app(processors, chain_group(topic), processors.chain),
        ] + [
            make_app(
                processors,
                enrichment_group(topic, enricher.name),
                functools.partial(processors.enrich, enricher),
            )
            for enricher in processors.enrichers
        ]
        runner = faust.Worker(
            apps[0],
            _Concurrently(apps),  # a service: started before apps[0], which it starts too
            loop=asyncio.get_running_loop(),
            loglevel="INFO",
            redirect_stdouts=False,
        )
        watchdog = asyncio.ensure_future(_exit_if_stop_hangs(runner))
        # staged vectors onto their memories, and the graph rebuilt after a large backlog
        vectors = asyncio.ensure_future(run_vector_index(processors.pool, processors.event_log))
        try:
            await runner.start()  # returns once a signal has stopped it
        finally:
            watchdog.cancel()
            vectors.cancel()
            await asyncio.gather(vectors, return_exceptions=True)
    finally:
        await processors.close()


async def _exit_if_stop_hangs(runner: faust.Worker) -> None:
    # faust can hang stopping in the middle of a rebalance: its consumer thread never finishes
    # and the stop joins it, blocking this loop, hence a timer thread. Exiting is safe: the
    # positions that matter live in Postgres, not in Kafka.
    await runner.wait_until_stopped()
    timer = threading.Timer(STOP_GRACE, _exit_now)
    timer.daemon = True
    timer.start()


def _exit_now() -> None:
    log.warning("faust did not stop within %.0fs of the signal; exiting anyway", STOP_GRACE)
    logging.shutdown()
    os._exit(0)


def run_worker(
    settings: Settings,
    embedder: Embedder | None = None,
    enrichers: Sequence[Enricher] | None = None,
) -> None:
    """Project and enrich the Kafka log into Postgres until SIGTERM/SIGINT (`spectron worker`).

    `enrichers` defaults to what the settings configure: the embedding pass of `embedder` (or
    `settings.embedder`) and, unless `settings.extractor` is "none", fact extraction.
    """
    asyncio.run(serve(settings, embedder or make_embedder(settings.embedder, settings), enrichers))


def main() -> None:
    """Entry point of `python -m projectors.faust_app`: settings from SPECTRON_* variables."""
    run_worker(Settings.from_env())


if __name__ == "__main__":
    main()
