"""Where SpectronStore reads items: the projections in-process, or `spectron serve` over HTTP.

Writes need no port: remember and forget are on both clients' sessions.
"""

from __future__ import annotations

from typing import Any, Protocol

from spectron.asof import AsOf
from spectron.calls import as_of_text  # the wire form of as_of
from spectron.client import SpectronClient
from spectron.http.client import HttpSession, HttpSpectronClient
from spectron.items import ItemRow, ItemVersion, read_items, read_scopes, read_versions
from spectron.scope import Scope, scope_key

Client = SpectronClient | HttpSpectronClient


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
    """Items read through `spectron serve` (/v1/sessions/{id}/items...), one session per scope."""

    def __init__(self, client: HttpSpectronClient) -> None:
        self.client = client
        self._sessions: dict[str, HttpSession] = {}

    async def _get(self, scope: Scope, path: str, params: dict[str, str] | None = None) -> Any:
        session = self._sessions.get(scope_key(scope))
        if session is None:
            session = await self.client.sessions.create(scope=scope)
            self._sessions[scope_key(scope)] = session
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
        sessions, self._sessions = list(self._sessions.values()), {}
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
