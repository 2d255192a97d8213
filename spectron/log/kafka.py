"""The Kafka EventLog: an aiokafka producer and reader over one topic, partitioned by scope.

Read-your-writes does not trust the broker's end offsets (some brokers, Tansu among them, report a
high watermark that lags the last produced batch): every append records its acknowledged offsets
in `spectron_log.partitions`, and `end_offsets()` answers the larger of that table and the broker.
One topic per database: the table, like the projection positions, has no topic column.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, OffsetOutOfRangeError, TopicAlreadyExistsError
from psycopg_pool import AsyncConnectionPool

from spectron.errors import LogUnavailable, StoreUnavailable
from spectron.events import Envelope, LogPosition, partition_key
from spectron.log import partition_for
from spectron.log.chain import ChainReport
from spectron.log.kafka_chain import verify_kafka_chain
from spectron.log.owed import Head, floor_heads, record_heads, written_heads
from spectron.records import Appended, RawRecord
from spectron.sealing import seal_events

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOG_APPEND_TIME = 1  # Kafka timestamp type: the broker stamped the record itself
EMPTY_WAIT_MS = 250  # how long a read waits for records before saying "nothing more"
CATCH_UP_WAIT_MS = 5_000  # ...and how long when the records are known to exist
FETCH_MAX_WAIT_MS = 100  # broker long-poll: short, so a tailing read sees a new record quickly
POLL_INTERVAL = 0.1
_KAFKA_ERRORS = (KafkaError, OSError)  # OSError covers refused connections and timeouts


def record_time(timestamp_ms: int) -> datetime:
    """The log time of a record from its Kafka timestamp (milliseconds, UTC)."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _ceil_ms(at: datetime) -> int:
    # a record stamped M ms is at or after `at` exactly when M >= ceil(at in ms)
    micros = (at - EPOCH) // timedelta(microseconds=1)
    return -(-micros // 1000)


class KafkaEventLog:
    """EventLog adapter over a Kafka topic; acknowledged offsets are mirrored in Postgres."""

    def __init__(
        self, bootstrap: str, topic: str, partitions: int, pool: AsyncConnectionPool
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._pool = pool
        self._producer: Any = None
        self._consumer: Any = None
        # the consumer is shared: a read's assign/seek/getmany must not interleave with another's
        self._reader_lock = asyncio.Lock()
        self._reading: int | None = None  # the one partition the consumer is assigned
        self._next_offset: int | None = None  # where it stands in it, so tailing needs no seek
        # per partition, the last timestamp this process gave a record: never go backwards
        self._last_ms: dict[int, int] = {}

    @property
    def partitions(self) -> int:
        """Number of partitions of the topic (its real count once started)."""
        return self._partitions

    @property
    def topic(self) -> str:
        """The Kafka topic holding the log."""
        return self._topic

    async def start(self) -> None:
        """Create the topic if missing, adopt its partition count, and connect."""
        try:
            await self._create_topic()
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                # the idempotent producer and transactions are not used: not every broker
                # (Tansu) has them, and the projections' exactly-once does not depend on them
                enable_idempotence=False,
            )
            await self._producer.start()
            found = await self._producer.partitions_for(self._topic)
            self._partitions = len(found)
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                # past the end or before the start is for read() to handle, not a silent rewind
                auto_offset_reset="none",
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            )
            await self._consumer.start()
        except _KAFKA_ERRORS as exc:
            await self.close()
            raise LogUnavailable(f"cannot reach Kafka at {self._bootstrap}: {exc!r}") from exc
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO spectron_log.partitions (partition)"
                " SELECT generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
                [self._partitions],
            )

    async def _create_topic(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        try:
            await admin.start()
            brokers = len((await admin.describe_cluster())["brokers"])
            # three replicas where the cluster has them, so acks="all" means something
            # the log is the truth and is kept for good: a broker's default retention (7 days)
            # would delete what a replay, a new enrichment pass or a reset position reads
            topic = NewTopic(
                self._topic,
                self._partitions,
                min(3, max(1, brokers)),
                topic_configs={"retention.ms": "-1", "retention.bytes": "-1"},
            )
            response = await admin.create_topics([topic])
        finally:
            await admin.close()
        for _, code, message in response.topic_errors:
            # several processes may start at once: whoever is second finds the topic there
            if code not in (0, TopicAlreadyExistsError.errno):
                raise LogUnavailable(f"cannot create topic {self._topic!r}: {message} ({code})")

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        """The database holding acknowledged heads and data keys beside this log."""
        return self._pool

    async def close(self) -> None:
        """Flush and disconnect the producer and the reader."""
        producer, consumer = self._producer, self._consumer
        self._producer = self._consumer = None
        for client in (producer, consumer):
            if client is not None:
                try:
                    await client.stop()
                except _KAFKA_ERRORS as exc:
                    log.warning("closing the Kafka client failed: %r", exc)

    def _require(self, client: Any) -> Any:
        if client is None:
            raise LogUnavailable("the Kafka event log is not started")
        return client

    async def append(self, events: Sequence[Envelope]) -> list[Appended]:
        """Produce a batch and wait for every acknowledgement (acks=all)."""
        async with self._pool.connection() as conn:
            # keys of new memories commit before their records are produced: a record must never
            # be in the topic while its key is not in Postgres
            values = await seal_events(conn, events)
        sends = []
        for event, value in zip(events, values, strict=True):
            key = partition_key(event)
            sends.append((partition_for(key, self._partitions), key, value))
        appended = await self._produce(sends)
        await self._record_heads(written_heads(events, appended))
        return appended

    async def append_raw(self, partition: int, key: bytes | None, value: bytes) -> Appended:
        """Produce bytes as another producer would (no validation): for tools and poison tests."""
        [appended] = await self._produce([(partition, key, value)])
        await self._record_heads(floor_heads([appended]))  # its scope is unknown: owed by all
        return appended

    async def verify_chain(self) -> ChainReport:
        """Check the topic against the links the chainer recorded (spectron.log.kafka_chain)."""
        return await verify_kafka_chain(self, self._pool)

    async def _record_heads(self, heads: Sequence[Head]) -> None:
        try:
            async with self._pool.connection() as conn:
                await record_heads(conn, heads)
        except (psycopg.Error, StoreUnavailable) as exc:
            # as with _record_acks: the records are in Kafka, failing now (StoreUnavailable says
            # "nothing was done") would invite a duplicate retry
            log.warning("could not record the scopes' heads %s: %s", heads, exc)

    async def _produce(self, sends: Sequence[tuple[int, bytes | None, bytes]]) -> list[Appended]:
        if not sends:
            return []
        producer = self._require(self._producer)
        now_ms = time.time_ns() // 1_000_000
        stamps: list[int] = []
        futures = []
        failure: BaseException | None = None
        for partition, key, value in sends:
            stamp = max(now_ms, self._last_ms.get(partition, 0))
            try:
                futures.append(
                    await producer.send(
                        self._topic, value=value, key=key, partition=partition, timestamp_ms=stamp
                    )
                )
            except _KAFKA_ERRORS as exc:
                failure = exc  # what was sent before may still be acknowledged: wait for it
                break
            self._last_ms[partition] = stamp
            stamps.append(stamp)
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        appended: list[Appended] = []
        for outcome, stamp in zip(outcomes, stamps, strict=True):
            if isinstance(outcome, BaseException):
                failure = failure or outcome
                continue
            # with CreateTime the record carries our stamp; with LogAppendTime the broker's
            if outcome.timestamp_type == LOG_APPEND_TIME and (outcome.timestamp or -1) >= 0:
                stamp = outcome.timestamp
            appended.append(
                Appended(LogPosition(outcome.partition, outcome.offset), record_time(stamp))
            )
        # even a half-failed batch records what was acknowledged, so read-your-writes covers it
        await self._record_acks(appended)
        if failure is not None:
            raise LogUnavailable(
                f"Kafka acknowledged {len(appended)} of {len(sends)} records appended to"
                f" {self._topic!r}: {failure!r}"
            ) from failure
        return appended

    async def _record_acks(self, appended: Sequence[Appended]) -> None:
        heads: dict[int, tuple[int, datetime]] = {}
        for item in appended:
            offset, at = heads.get(item.position.partition, (-1, EPOCH))
            heads[item.position.partition] = (
                max(offset, item.position.offset + 1),
                max(at, item.recorded_at),
            )
        if not heads:
            return
        try:
            async with self._pool.connection() as conn, conn.cursor() as cur:
                # sorted: concurrent appenders lock the rows in the same order, never deadlock
                await cur.executemany(
                    "INSERT INTO spectron_log.partitions AS p (partition, next_offset, last_time)"
                    " VALUES (%s, %s, %s) ON CONFLICT (partition) DO UPDATE SET"
                    " next_offset = greatest(p.next_offset, excluded.next_offset),"
                    " last_time = greatest(p.last_time, excluded.last_time)",
                    [(p, offset, at) for p, (offset, at) in sorted(heads.items())],
                )
        except (psycopg.Error, StoreUnavailable) as exc:
            # the records are in Kafka: failing the append now would only invite a duplicate
            # retry; end_offsets() still sees them through the broker, if later
            log.warning("could not record acknowledged offsets %s: %s", heads, exc)

    async def read(self, partition: int, from_offset: int, limit: int = 500) -> list[RawRecord]:
        """Records of one partition from an offset, in order; [] after a short wait at the end."""
        consumer = self._require(self._consumer)
        tp = TopicPartition(self._topic, partition)
        async with self._reader_lock:
            try:
                records = await self._read_locked(consumer, tp, from_offset, limit)
            except _KAFKA_ERRORS as exc:
                self._reading = None
                raise LogUnavailable(f"cannot read {self._topic!r}[{partition}]: {exc!r}") from exc
            if records:
                self._next_offset = records[-1].offset + 1
        return [
            RawRecord(
                LogPosition(partition, r.offset),
                record_time(r.timestamp),
                r.key,
                r.value if r.value is not None else b"",  # a tombstone is poison here
            )
            for r in records
            if r.offset >= from_offset
        ]

    async def _read_locked(self, consumer: Any, tp: Any, from_offset: int, limit: int) -> list[Any]:
        if self._reading != tp.partition:
            consumer.assign([tp])
            self._reading, self._next_offset = tp.partition, None
        if self._next_offset != from_offset:
            consumer.seek(tp, from_offset)
            self._next_offset = from_offset
        try:
            records = await self._fetch(consumer, tp, limit, EMPTY_WAIT_MS)
        except OffsetOutOfRangeError:
            self._next_offset = None
            start = int((await consumer.beginning_offsets([tp]))[tp])
            if from_offset >= start:
                return []  # past the end
            # before the start: retention deleted those records; read from the oldest kept
            consumer.seek(tp, start)
            self._next_offset = start
            records = await self._fetch(consumer, tp, limit, EMPTY_WAIT_MS)
        if not records and from_offset < (await self.end_offsets())[tp.partition]:
            # known to exist (acknowledged): the first fetch after a seek can be slow
            records = await self._fetch(consumer, tp, limit, CATCH_UP_WAIT_MS)
        return records

    async def _fetch(self, consumer: Any, tp: Any, limit: int, wait_ms: int) -> list[Any]:
        batch = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=limit)
        records: list[Any] = list(batch.get(tp, []))
        while records and len(records) < limit:
            # top up from what is already buffered, without waiting again
            more = await consumer.getmany(tp, timeout_ms=0, max_records=limit - len(records))
            if not more.get(tp):
                break
            records.extend(more[tp])
        return records

    async def end_offsets(self) -> dict[int, int]:
        """Per partition, the larger of the acknowledged offsets and the broker's end offset."""
        consumer = self._require(self._consumer)
        tps = [TopicPartition(self._topic, p) for p in range(self._partitions)]
        try:
            broker, acked = await asyncio.gather(consumer.end_offsets(tps), self._acked_heads())
        except _KAFKA_ERRORS as exc:
            raise LogUnavailable(
                f"cannot read the end offsets of {self._topic!r}: {exc!r}"
            ) from exc
        return {tp.partition: max(int(broker.get(tp, 0)), acked.get(tp.partition, 0)) for tp in tps}

    async def _acked_heads(self) -> dict[int, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute("SELECT partition, next_offset FROM spectron_log.partitions")
            return {int(p): int(n) for p, n in await cur.fetchall()}

    async def offset_for_time(self, partition: int, at: datetime) -> int:
        """First offset recorded at or after `at`; the end offset when there is none.

        The broker's answer is checked against the records around it and, when wrong (Tansu
        answers 0 whatever the time), replaced by a binary search over record timestamps.
        """
        consumer = self._require(self._consumer)
        tp = TopicPartition(self._topic, partition)
        target = _ceil_ms(at)
        end = (await self.end_offsets())[partition]
        try:
            found = (await consumer.offsets_for_times({tp: target})).get(tp)
            start = int((await consumer.beginning_offsets([tp]))[tp])
        except _KAFKA_ERRORS as exc:
            raise LogUnavailable(f"cannot search {self._topic!r} by time: {exc!r}") from exc
        # a timestamp of -1 means "no such record" (Tansu says so with offset 0)
        guess = end if found is None or found.timestamp < 0 else min(int(found.offset), end)
        if await self._first_at(partition, guess, target, start, end):
            return guess
        low, high = start, end
        while low < high:
            middle = (low + high) // 2
            stamp = await self._stamp(partition, middle)
            if stamp is None or stamp >= target:
                high = middle
            else:
                low = middle + 1
        return low

    async def _first_at(
        self, partition: int, offset: int, target: int, start: int, end: int
    ) -> bool:
        if offset < end:
            stamp = await self._stamp(partition, offset)
            if stamp is not None and stamp < target:
                return False
        if offset > start:
            before = await self._stamp(partition, offset - 1)
            if before is not None and before >= target:
                return False
        return True

    async def _stamp(self, partition: int, offset: int) -> int | None:
        records = await self.read(partition, offset, 1)
        if not records:
            return None
        return _ceil_ms(records[0].recorded_at)

    async def wait_for_appends(self, timeout: float) -> None:
        """Sleep a short poll interval (at most `timeout`): Kafka has no cheap append signal.

        Tailing reads already long-poll the broker; this only paces callers that poll offsets.
        """
        await asyncio.sleep(max(0.0, min(timeout, POLL_INTERVAL)))
