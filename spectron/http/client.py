"""The Python client over HTTP: the same sessions, methods, models and errors as the in-process one."""

from __future__ import annotations

import uuid
from collections.abc import Generator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from spectron.asof import AsOf
from spectron.config import Settings
from spectron.errors import (
    InvalidInput,
    MemoryNotFound,
    ServerUnavailable,
    SessionClosed,
    SpectronError,
)
from spectron.events import LogPosition
from spectron.facts import EntityType, Facts, check_facts
from spectron.forgetting import ForgetFilter, ForgetResult
from spectron.health import DeadLetterInfo, LogStatus, RetryOutcome
from spectron.history import AuditPage, HistoryEntry
from spectron.http.bodies import KeyInfo
from spectron.http.problems import error_from_problem
from spectron.log.owed import READ_AFTER_HEADER, format_token
from spectron.memories import MemoryPage, MemoryRecord
from spectron.models import Profile, RecallResult, Reflection, RememberResult, State
from spectron.recall import RecallMode
from spectron.scope import Scope, canonical_scope, is_visible, scope_key
from spectron.scope_tree import ScopeTree
from spectron.service import Consistency
from spectron.validation import check_metadata
from spectron.verification import LogVerification

DEFAULT_TIMEOUT = 30.0
M = TypeVar("M", bound=BaseModel)


class HttpSpectronClient:
    """`HttpSpectronClient(base_url, api_key)`; defaults come from SPECTRON_BASE_URL and SPECTRON_API_KEY."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        environment = Settings.from_env()
        url = base_url or environment.base_url
        if not url:
            raise InvalidInput("no server: pass base_url or set SPECTRON_BASE_URL")
        key = api_key or environment.api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.sessions = HttpSessions(self)
        # per scope written to, the last offset per partition this client's writes were
        # acknowledged at: its strong reads pass on those their scope can see, so any server
        # waits for them (DESIGN rule 3 across servers)
        self._written: dict[str, tuple[Scope, dict[int, int]]] = {}

    def note_write(self, scope: Scope, written: RememberResult) -> None:
        """Remember an acknowledged write's position for this client's later strong reads."""
        _, heads = self._written.setdefault(scope_key(scope), (scope, {}))
        if heads.get(written.partition, -1) < written.offset:
            heads[written.partition] = written.offset

    def read_token(self, scope: Scope) -> str | None:
        """The read-your-writes token of this client's writes visible from `scope` (None: none)."""
        merged: dict[int, int] = {}
        for written_scope, heads in self._written.values():
            if is_visible(written_scope, scope):
                for partition, offset in heads.items():
                    merged[partition] = max(merged.get(partition, -1), offset)
        return format_token(merged) if merged else None

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        wait: float | None = None,
        token: str | None = None,
    ) -> Any:
        """Send one request; return its JSON, or raise the typed error its problem+json names.

        `token` is a read-your-writes token (spectron.log.owed) for a strong read to wait for.
        """
        # the server may wait up to `wait` seconds for read-your-writes before answering
        timeout = self.timeout if wait is None else max(self.timeout, wait + 10.0)
        try:
            content = orjson.dumps(body) if body is not None else None
        except TypeError as exc:
            raise InvalidInput(f"the request is not JSON-serialisable: {exc}") from exc
        headers = {"Content-Type": "application/json"} if content is not None else {}
        if token is not None:
            headers[READ_AFTER_HEADER] = token
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=headers, timeout=timeout
            )
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            data = {"detail": response.text[:500]}
        if response.status_code >= 400:
            raise error_from_problem(response.status_code, data)
        return data

    async def whoami(self) -> KeyInfo:
        """The API key in use: principal, scope floor, capabilities."""
        return _parse(KeyInfo, await self.request("GET", "/v1/whoami"))

    async def scopes(self, *, as_of: AsOf = None) -> ScopeTree:
        """Scopes holding memories visible from the key's floor, with counts (needs `read`)."""
        params = {"as_of": text} if (text := _as_of_text(as_of)) is not None else None
        return _parse(ScopeTree, await self.request("GET", "/v1/scopes", params=params))

    async def status(self) -> LogStatus:
        """Per partition log end, projected position and lag; pending embeddings; dead letters."""
        return _parse(LogStatus, await self.request("GET", "/v1/status"))

    async def verify_log(self) -> LogVerification:
        """Check the log's hash chain end to end (needs `read`)."""
        return _parse(LogVerification, await self.request("GET", "/v1/log/verification"))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetterInfo]:
        """Dead letters in log order (needs `admin` with the floor `{}`)."""
        found = await self.request("GET", "/v1/dead-letters", params={"limit": str(limit)})
        return [_parse(DeadLetterInfo, item) for item in found]

    async def retry_dead_letters(self, position: LogPosition | None = None) -> RetryOutcome:
        """Retry one dead letter, or all (needs `admin` with the floor `{}`)."""
        body = {} if position is None else {"partition": position[0], "offset": position[1]}
        return _parse(RetryOutcome, await self.request("POST", "/v1/dead-letters/retry", body))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> HttpSpectronClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class HttpSessions:
    """`client.sessions`: opens sessions on the server."""

    def __init__(self, client: HttpSpectronClient) -> None:
        self._client = client

    def create(self, scope: Scope, principal: str | None = None) -> HttpSession:
        """A session at `scope`, opened on `async with` or `await`; the server checks the key's floor."""
        if principal is not None:
            raise InvalidInput("over HTTP the principal comes from the API key; do not pass one")
        return HttpSession(self._client, canonical_scope(scope))


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServerUnavailable(f"the server answered an unexpected {model.__name__}") from exc


class HttpSession:
    """Memory operations at one scope, over HTTP. An async context manager; also awaitable."""

    def __init__(self, client: HttpSpectronClient, scope: Scope) -> None:
        self._client = client
        self.scope = scope
        self.session_id: str | None = None
        self.principal: str | None = None
        self.capabilities: list[str] = []
        self._closed = False

    async def _open(self) -> HttpSession:
        if self.session_id is None:
            info = await self._client.request("POST", "/v1/sessions", {"scope": self.scope})
            self.session_id = str(info["session_id"])
            self.principal = str(info["principal"])
            self.capabilities = list(info["capabilities"])
        return self

    def __await__(self) -> Generator[Any, None, HttpSession]:
        return self._open().__await__()

    async def __aenter__(self) -> HttpSession:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the session on the server; its memories stay."""
        if self._closed:
            return
        self._closed = True
        if self.session_id is not None:
            await self._client.request("DELETE", f"/v1/sessions/{self.session_id}")

    async def _call(
        self,
        method: str,
        operation: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        wait: float | None = None,
        consistency: Consistency | None = None,
    ) -> Any:
        if self._closed:
            raise SessionClosed(f"session at {self.scope} is closed")
        await self._open()
        path = f"/v1/sessions/{self.session_id}/{operation}"
        # a strong read also waits for this client's own acknowledged writes, on any server
        token = self._client.read_token(self.scope) if consistency == "strong" else None
        return await self._client.request(method, path, body, params, wait, token)

    async def remember(
        self,
        content: str,
        memory_category: str = "knowledge",
        metadata: dict[str, Any] | None = None,
        facts: Facts | list[Any] | dict[str, Any] | None = None,
    ) -> RememberResult:
        """Append a memory at this session's scope; returns once the log has it."""
        # checked here too: JSON would silently turn NaN into null and cannot carry sets
        metadata = check_metadata(metadata) if metadata is not None else None
        body: dict[str, Any] = {
            "content": content,
            "memory_category": memory_category,
            "metadata": metadata,
        }
        if facts is not None:
            body["facts"] = _facts_json(facts)
        written = _parse(RememberResult, await self._call("POST", "remember", body))
        self._client.note_write(self.scope, written)
        return written

    async def recall(
        self,
        query: str,
        top_k: int = 5,
        *,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        mode: RecallMode = "hybrid",
        as_of: AsOf = None,
        explain: bool = False,
    ) -> RecallResult:
        """Memories visible from this scope that best match `query` (read-your-writes by default).

        With `explain=True` every item says which legs found it and at what rank.
        """
        metadata = check_metadata(metadata) if metadata is not None else None
        body = {
            "query": query,
            "top_k": top_k,
            "memory_category": memory_category,
            "metadata": metadata,
            "consistency": consistency,
            "timeout": timeout,
            "mode": mode,
            "as_of": _as_of_text(as_of),
            "explain": explain,
        }
        answer = await self._call("POST", "recall", body, wait=timeout, consistency=consistency)
        return _parse(RecallResult, answer)

    async def get_state(
        self,
        scope: Scope | None = None,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> State:
        """Entities, attributes (with supersession chains) and relations visible from a scope."""
        params = _params(consistency, timeout, as_of)
        if scope is not None:
            params["scope"] = orjson.dumps(canonical_scope(scope)).decode()
        answer = await self._call(
            "GET", "state", params=params, wait=timeout, consistency=consistency
        )
        return _parse(State, answer)

    async def reflect(self, query: str, persist: bool = False, top_k: int = 10) -> Reflection:
        """Synthesise what this scope can see about `query`; persist=True records it as memory."""
        body = {"query": query, "persist": persist, "top_k": top_k}
        return _parse(Reflection, await self._call("POST", "reflect", body))

    async def profile(
        self,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> Profile:
        """This scope's entity state, persisted reflections, contributions and recent memory."""
        params = _params(consistency, timeout, as_of)
        answer = await self._call(
            "GET", "profile", params=params, wait=timeout, consistency=consistency
        )
        return _parse(Profile, answer)

    async def history(
        self, entity: str, attribute: str | None = None, *, as_of: AsOf = None
    ) -> list[HistoryEntry]:
        """Every value an entity's attribute(s) had at or below this scope, oldest first."""
        params = {"entity": entity}
        if attribute is not None:
            params["attribute"] = attribute
        if (text := _as_of_text(as_of)) is not None:
            params["as_of"] = text
        entries = await self._call("GET", "history", params=params)
        return [_parse(HistoryEntry, entry) for entry in entries]

    async def forget(
        self,
        memory_id: uuid.UUID | str | None = None,
        *,
        scope: Scope | None = None,
        where: ForgetFilter | dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> ForgetResult:
        """Erase one memory, or every memory at or below `scope` (default: this session's) matching `where`."""
        if isinstance(where, ForgetFilter):
            where = where.model_dump(mode="json", exclude_none=True)
        body = {
            "memory_id": str(memory_id) if memory_id is not None else None,
            "scope": canonical_scope(scope) if scope is not None else None,
            "where": where,
            "reason": reason,
        }
        return _parse(ForgetResult, await self._call("POST", "forget", body))

    async def memories(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        memory_category: str | None = None,
        metadata: dict[str, Any] | None = None,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryPage:
        """Memories visible from this scope, newest first; pass `next_cursor` on for older ones."""
        params = _params(consistency, timeout, as_of)
        params["limit"] = str(limit)
        if cursor is not None:
            params["cursor"] = cursor
        if memory_category is not None:
            params["memory_category"] = memory_category
        if metadata is not None:
            params["metadata"] = orjson.dumps(check_metadata(metadata)).decode()
        return _parse(MemoryPage, await self._call("GET", "memories", params=params, wait=timeout))

    async def memory(
        self,
        memory_id: uuid.UUID | str,
        *,
        consistency: Consistency = "strong",
        timeout: float | None = None,
        as_of: AsOf = None,
    ) -> MemoryRecord:
        """One memory visible from this scope; MemoryNotFound if there is none (or it was forgotten)."""
        try:
            parsed = uuid.UUID(str(memory_id))
        except ValueError:
            raise MemoryNotFound(f"no memory {memory_id!r}: not a memory id") from None
        params = _params(consistency, timeout, as_of)
        found = await self._call("GET", f"memories/{parsed}", params=params, wait=timeout)
        return _parse(MemoryRecord, found)

    async def audit(
        self,
        *,
        limit: int = 200,
        principal: str | None = None,
        since: AsOf = None,
        until: AsOf = None,
    ) -> AuditPage:
        """The newest events visible from this scope: who did what, when, ids and log positions."""
        params = {"limit": str(limit)}
        if principal is not None:
            params["principal"] = principal
        if (text := _as_of_text(since)) is not None:
            params["since"] = text
        if (text := _as_of_text(until)) is not None:
            params["until"] = text
        return _parse(AuditPage, await self._call("GET", "audit", params=params))

    async def register_entity_type(self, entity_type: EntityType | dict[str, Any]) -> None:
        """Register an entity type for extraction at and below this session's scope."""
        if isinstance(entity_type, EntityType):
            entity_type = entity_type.model_dump(mode="json")
        await self._call("POST", "entity-types", entity_type)


def _params(consistency: str, timeout: float | None, as_of: AsOf = None) -> dict[str, str]:
    params = {"consistency": consistency}
    if timeout is not None:
        params["timeout"] = repr(float(timeout))
    if (text := _as_of_text(as_of)) is not None:
        params["as_of"] = text
    return params


def _as_of_text(as_of: AsOf) -> str | None:
    """as_of on the wire: 'partition:offset' for a position, ISO 8601 for a time."""
    if as_of is None or isinstance(as_of, str):
        return as_of
    if isinstance(as_of, LogPosition):
        return f"{as_of.partition}:{as_of.offset}"
    if isinstance(as_of, datetime):
        return as_of.isoformat()
    raise InvalidInput("as_of must be a datetime, an ISO 8601 string or a LogPosition")


def _facts_json(facts: Facts | list[Any] | dict[str, Any]) -> Any:
    """Facts as JSON; lists (the in-process shorthand) are sorted into a Facts first."""
    checked = check_facts(facts)
    return checked.model_dump(mode="json") if checked is not None else None


__all__ = ["HttpSession", "HttpSessions", "HttpSpectronClient", "SpectronError"]
