"""Where SpectronStore reads items: the projections in-process, or `spectron serve` over HTTP.

Writes need no port: remember and forget are on both clients' sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any, Protocol

from spectron.asof import AsOf
from spectron.calls import as_of_text  # the wire form of as_of
from spectron.client import SpectronClient
from spectron.errors import SessionNotFound
from spectron.http.client import HttpSession, HttpSpectronClient
from spectron.items import ItemRow, ItemVersion, read_items, read_scopes, read_versions
from spectron.scope import Scope, scope_key

Client = SpectronClient | HttpSpectronClient
SESSIONS_KEPT = 16  # sessions an HTTP item source keeps open: those of the scopes read last


class ItemSource(Protocol):
    """Reads of store items (writes are remember and forget on the client's sessions)."""

    async def items(
        self, prefix: Scope, *, key: str | None = None, exact: bool = False, as_of: AsOf = None
    ) -> list[ItemRow]:
        """Current items at (exact) or at and below `prefix`, read-your-writes."""
        ...

    async def versions(self, scope: Scope, key: str) -> list[ItemVersion]:
        """Every value of a key at exactly `scope`, oldest first."""
        ...

    async def scopes(self, prefix: Scope) -> list[Scope]:
        """Scopes at or below `prefix` holding items."""
        ...

    async def close(self) -> None:
        """Release what the source holds."""
        ...


class LocalItems:
    """Items read from the projections of an in-process client."""

    def __init__(self, client: SpectronClient, bound: float) -> None:
        self.client = client
        self.bound = bound

    async def items(
        self, prefix: Scope, *, key: str | None = None, exact: bool = False, as_of: AsOf = None
    ) -> list[ItemRow]:
        """See ItemSource."""
        service = await self.client.service()
        return await read_items(
            service, prefix, key=key, exact=exact, as_of=as_of, bound=self.bound
        )

    async def versions(self, scope: Scope, key: str) -> list[ItemVersion]:
        """See ItemSource."""
        return await read_versions(await self.client.service(), scope, key, bound=self.bound)

    async def scopes(self, prefix: Scope) -> list[Scope]:
        """See ItemSource."""
        return await read_scopes(await self.client.service(), prefix, bound=self.bound)

    async def close(self) -> None:
        """Nothing to release: the client is the caller's."""


class HttpItems:
    """Items read through `spectron serve` (/v1/sessions/{id}/items...), a session per scope read.

    The sessions of the SESSIONS_KEPT scopes read last stay open; an older one is closed. A store
    whose namespaces are per user reads from as many scopes as there are users: kept open, they
    reached the key's cap of open sessions and every later open was refused.
    """

    def __init__(self, client: HttpSpectronClient) -> None:
        self.client = client
        self._sessions: OrderedDict[str, HttpSession] = OrderedDict()
        self._opening = asyncio.Lock()

    async def _session(self, scope: Scope) -> HttpSession:
        """The open session at `scope`, the most recently used now; opened if need be."""
        key = scope_key(scope)
        async with self._opening:
            session = self._sessions.pop(key, None)
            if session is None:
                session = await self.client.sessions.create(scope=scope)
                while len(self._sessions) >= SESSIONS_KEPT:
                    _, oldest = self._sessions.popitem(last=False)
                    with contextlib.suppress(SessionNotFound):  # expired on the server already
                        await oldest.close()
            self._sessions[key] = session
        return session

    async def _get(self, scope: Scope, path: str, params: dict[str, str] | None = None) -> Any:
        session = await self._session(scope)
        try:
            return await self._read(session, path, params)
        except SessionNotFound:
            # idle past the server's lifetime, or closed by another read here: open anew, once
            if self._sessions.get(scope_key(scope)) is session:
                del self._sessions[scope_key(scope)]
            return await self._read(await self._session(scope), path, params)

    async def _read(self, session: HttpSession, path: str, params: dict[str, str] | None) -> Any:
        assert session.session_id is not None
        return await self.client.request(
            "GET", f"/v1/sessions/{session.session_id}/{path}", params=params
        )

    async def items(
        self, prefix: Scope, *, key: str | None = None, exact: bool = False, as_of: AsOf = None
    ) -> list[ItemRow]:
        """See ItemSource."""
        params = {"exact": "true" if exact else "false"}
        if key is not None:
            params["key"] = key
        if as_of is not None:
            params["as_of"] = str(as_of_text(as_of))
        return [ItemRow.model_validate(row) for row in await self._get(prefix, "items", params)]

    async def versions(self, scope: Scope, key: str) -> list[ItemVersion]:
        """See ItemSource."""
        found = await self._get(scope, "items/versions", {"key": key})
        return [ItemVersion.model_validate(row) for row in found]

    async def scopes(self, prefix: Scope) -> list[Scope]:
        """See ItemSource."""
        return [dict(scope) for scope in await self._get(prefix, "items/scopes")]

    async def close(self) -> None:
        """Close the sessions this source opened."""
        sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            await session.close()


def item_source(client: Client, bound: float) -> ItemSource:
    """Where a client's items are read: the projections in-process, the server over HTTP."""
    if isinstance(client, HttpSpectronClient):
        return HttpItems(client)
    remote = getattr(client, "_http", None)  # SpectronClient(base_url=...) wraps an HTTP client
    if isinstance(remote, HttpSpectronClient):
        return HttpItems(remote)
    return LocalItems(client, bound)


__all__ = ["Client", "HttpItems", "ItemSource", "LocalItems", "item_source"]
