"""Tamper evidence on Kafka: one chainer per partition links the topic's records after the fact.

Why after the fact: here Kafka has no transactions and several processes produce to a partition at
once (API servers, enrichment workers), so no producer knows, when it sends, the hash of the record
that will land before its own. A per-partition single writer would serialise every append through
one process; instead the hashes are computed once the order is fixed, by reading it back.

* Chaining (`extend_chain`): `spectron worker` consumes the topic in a consumer group of its own
  and hands each partition's records, in offset order, to `extend_chain`. In one Postgres
  transaction, under the lock of the partition's row in `spectron_log.kafka_chain_heads`, it adds a
  link per record to `spectron_log.kafka_chain` (offset, digest of the record's canonical
  serialisation, previous hash, chained hash: the embedded log's formula) and moves the head. The
  lock makes the chainer single per partition whatever the consumer group does in a rebalance: a
  second chainer waits, then skips what the first linked. A hole is never linked over (ChainGap):
  the worker reads what the group skipped from the log first, as it does for projections.
* Verifying (`verify_kafka_chain`, `spectron log verify`): per partition, a snapshot of the head
  and the links, then the topic re-read from offset 0, walked side by side by the pure
  `spectron.log.chain.verify_links`. It names the first offset whose record is missing, differs
  from the one linked (altered bytes, key or time, or another record in its place: reordering), or
  whose link was edited or removed. Records past the head are reported as not chained yet.

What it proves: from the moment a record is chained (normally well under a second after it was
appended), any change to it in the topic, or to the links, is detected and located. It cannot vouch
for a record changed before the chainer read it, and whoever can rewrite both the topic and the
links can forge a consistent pair, as with the embedded log's own hashes; keeping the printed head
hashes elsewhere anchors them. The chain, like replay, starts at offset 0: the topic must keep
every record (unlimited retention), and a record's headers are not covered (Spectron sets none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from spectron.log import EventLog
from spectron.log.chain import ChainHead, ChainLink, ChainReport, link_records, verify_links
from spectron.records import RawRecord

READ_BATCH = 500


async def chain_head(conn: AsyncConnection[Any], partition: int) -> ChainHead:
    """How far a partition is chained (offset 0 and the genesis hash when not at all)."""
    cur = await conn.execute(
        "SELECT next_offset, last_hash FROM spectron_log.kafka_chain_heads WHERE partition = %s",
        [partition],
    )
    row = await cur.fetchone()
    return ChainHead() if row is None else ChainHead(int(row[0]), bytes(row[1]))


async def extend_chain(
    conn: AsyncConnection[Any], partition: int, records: Sequence[RawRecord]
) -> ChainHead:
    """Link a partition's records that follow its head, in one transaction; return the new head.

    Records before the head are redeliveries and are skipped; raises ChainGap when the first new
    record does not follow the head (the caller must hand the records in between first).
    """
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO spectron_log.kafka_chain_heads (partition) VALUES (%s)"
            " ON CONFLICT DO NOTHING",
            [partition],
        )
        # the row lock is what makes the chainer single per partition
        await cur.execute(
            "SELECT next_offset, last_hash FROM spectron_log.kafka_chain_heads"
            " WHERE partition = %s FOR UPDATE",
            [partition],
        )
        row = await cur.fetchone()
        assert row is not None
        links, head = link_records(partition, ChainHead(int(row[0]), bytes(row[1])), records)
        if not links:
            return head
        await cur.executemany(
            "INSERT INTO spectron_log.kafka_chain"
            ' (partition, "offset", digest, prev_hash, hash) VALUES (%s, %s, %s, %s, %s)',
            [(partition, ln.offset, ln.digest, ln.prev_hash, ln.hash) for ln in links],
        )
        await cur.execute(
            "UPDATE spectron_log.kafka_chain_heads SET next_offset = %s, last_hash = %s"
            " WHERE partition = %s",
            [head.next_offset, head.last_hash, partition],
        )
    return head


async def chain_snapshot(
    pool: AsyncConnectionPool, partition: int
) -> tuple[ChainHead, list[ChainLink]]:
    """A partition's head and links as of one moment (the chainer may be adding more meanwhile)."""
    async with pool.connection() as conn:
        async with conn.transaction():
            # one snapshot for both reads: links added after the head was read are not "beyond it"
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            head = await chain_head(conn, partition)
            cur = await conn.execute(
                'SELECT "offset", digest, prev_hash, hash FROM spectron_log.kafka_chain'
                ' WHERE partition = %s ORDER BY "offset"',
                [partition],
            )
            links = [
                ChainLink(int(o), bytes(d), bytes(p), bytes(h))
                for o, d, p, h in await cur.fetchall()
            ]
    return head, links


async def read_until(log: EventLog, partition: int, end: int) -> list[RawRecord]:
    """A partition's records from offset 0 up to (not including) `end`, as the topic serves them."""
    records: list[RawRecord] = []
    offset = 0
    while offset < end:
        batch = await log.read(partition, offset, READ_BATCH)
        if not batch:
            break  # the topic ends early: the verifier names the first missing offset
        records.extend(r for r in batch if r.position.offset < end)
        offset = batch[-1].position.offset + 1
    return records


async def verify_kafka_chain(log: EventLog, pool: AsyncConnectionPool) -> ChainReport:
    """Check every partition of the topic against its recorded chain, one partition at a time."""
    report = ChainReport()
    ends = await log.end_offsets()
    for partition in range(log.partitions):
        head, links = await chain_snapshot(pool, partition)
        records = await read_until(log, partition, head.next_offset)
        checked, found = verify_links(partition, head, links, records)
        report.checked += checked
        report.unchained += max(0, ends.get(partition, 0) - head.next_offset)
        report.heads[partition] = head
        if found is not None:
            report.breaks.append(found)
    return report


__all__ = [
    "chain_head",
    "chain_snapshot",
    "extend_chain",
    "read_until",
    "verify_kafka_chain",
]
