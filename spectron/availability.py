"""Whether this process can reach its database, and bringing an embedded one back when it died.

A `StoreWatch` probes the database every second on a connection of its own (and at once when a
query meets a broken connection). When the probe cannot connect, or the embedded postmaster is gone,
the store is *down*: the pool refuses requests at once with `StoreUnavailable` (HTTP 503 with
Retry-After) instead of holding them for its 30 s timeout, requests already waiting for a
connection are let go, and the embedded server is started again (or adopted, when another process
sharing the home restarted it first). When the probe answers again, the pool's idle connections are
checked and dead ones replaced before requests are let through: the store is *up*.

A process that owns its embedded server and has not brought it back for `give_up_after` seconds is
*failed*; so is one whose watch stopped. `/healthz` reports that state, the one the process cannot
leave by itself, so a supervisor restarts it. With an external database (`SPECTRON_DATABASE_URL`)
the process waits for whoever runs that database: down, never failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg import AsyncConnection

from spectron.errors import StoreUnavailable

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from spectron.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)
State = Literal["up", "down", "failed"]
PROBE_INTERVAL = 1.0  # seconds between probes while nothing looks wrong
PROBE_BOUND = 10.0  # a probe slower than this says "busy", not "down"
GIVE_UP_AFTER = 120.0


class StoreWatch:
    """The database's availability as this process sees it; restarts an embedded server it owns."""

    def __init__(
        self,
        uri: str,
        server: EmbeddedPostgres | None = None,
        *,
        interval: float = PROBE_INTERVAL,
        give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        self._uri = uri
        self._server = server
        self._interval = interval
        self.give_up_after = give_up_after  # seconds down, owning the server, before "failed"
        self.state: State = "up"
        self.reason = ""
        self._down_since: float | None = None
        self._poke = asyncio.Event()
        self._waits: set[asyncio.Timeout] = set()  # requests waiting for a pool connection
        self._probe: AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None

    def start(self, pool: AsyncConnectionPool[Any]) -> None:
        """Watch in a task of the running loop until `close`."""
        self._task = asyncio.create_task(self._run(pool), name="spectron-store-watch")

    async def close(self) -> None:
        """Stop watching and close the probe connection."""
        for task in (self._task, self._restarting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._probe is not None:
            await self._probe.close()
            self._probe = None

    @property
    def live(self) -> bool:
        """False when the process cannot get out of its state by itself (failed, or not watching)."""
        watching = self._task is not None and not self._task.done()
        return watching and self.state != "failed"

    def raise_if_down(self) -> None:
        """Raise StoreUnavailable while the database is down: callers fail fast."""
        if self.state != "up":
            raise self.unavailable()

    def unavailable(self, detail: str | None = None) -> StoreUnavailable:
        """The error to answer with while the database cannot be used."""
        restarting = "; restarting it" if self._server is not None else ""
        return StoreUnavailable(f"the database is unavailable: {detail or self.reason}{restarting}")

    def suspect(self) -> None:
        """A query met a broken connection: probe now rather than at the next tick."""
        self._poke.set()

    @contextlib.asynccontextmanager
    async def waiting(self) -> AsyncIterator[None]:
        """Wrap a wait for a pool connection: it ends with TimeoutError if the database goes down."""
        async with asyncio.timeout(None) as deadline:
            self._waits.add(deadline)
            try:
                yield
            finally:
                self._waits.discard(deadline)

    async def _run(self, pool: AsyncConnectionPool[Any]) -> None:
        while True:
            try:
                await self._round(pool)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the watch; /healthz would say so
                log.exception("store watch round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._poke.wait()
            self._poke.clear()

    async def _round(self, pool: AsyncConnectionPool[Any]) -> None:
        problem = await self._problem()
        if problem is None:
            if self.state != "up":
                async with asyncio.timeout(PROBE_BOUND):
                    await pool.check()  # replace the connections to the dead server first
                log.warning("the database is back after %.1fs", self._down_for())
                self.state, self.reason, self._down_since = "up", "", None
            return
        if problem == "busy":
            return
        self._went_down(problem)
        if self._server is None:
            return  # someone else runs the database: wait for it
        if self._restarting is None or self._restarting.done():
            self._restarting = asyncio.create_task(self._restart(self._server))
        if self._down_for() > self.give_up_after:
            self.state = "failed"

    async def _restart(self, server: EmbeddedPostgres) -> None:
        """Start the embedded server (in a thread: pg_ctl waits), or adopt another process's."""
        try:
            started = await asyncio.to_thread(server.ensure_running)
        except Exception as exc:
            log.warning("could not start the embedded Postgres yet: %s", exc)
            return
        self._poke.set()  # started, or another process had: probe again at once
        if started:
            log.warning("restarted the embedded Postgres")

    def _went_down(self, problem: str) -> None:
        if self.state == "up":
            log.warning("the database is unavailable (%s)", problem)
            self.state, self._down_since = "down", time.monotonic()
            for deadline in list(self._waits):
                deadline.reschedule(-1)  # already past: the waiting request raises at once
        self.reason = problem

    def _down_for(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    async def _problem(self) -> str | None:
        """None when the database answers; "busy" when it is slow; else what is wrong."""
        if self._server is not None and not await asyncio.to_thread(self._server.running):
            return "the embedded Postgres is not running"
        try:
            async with asyncio.timeout(PROBE_BOUND):
                if self._probe is None or self._probe.closed:
                    self._probe = await AsyncConnection.connect(self._uri, autocommit=True)
                await self._probe.execute("SELECT 1")
        except TimeoutError:
            return "busy" if self.state == "up" else "the database does not answer"
        except psycopg.Error as exc:
            if self._probe is not None:
                await self._probe.close()
                self._probe = None
            return f"cannot reach it ({str(exc).strip() or type(exc).__name__})"
        return None
