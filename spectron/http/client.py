"""The Python client over HTTP: the same sessions, methods, models and errors as the in-process one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from spectron.asof import AsOf
from spectron.calls import Call, as_of_text
from spectron.config import Settings
from spectron.errors import InvalidInput, ServerUnavailable, SpectronError
from spectron.events import LogPosition
from spectron.health import DeadLetterInfo, LogStatus, RetryOutcome
from spectron.http.bodies import KeyInfo
from spectron.http.problems import error_from_problem
from spectron.log.owed import READ_AFTER_HEADER, format_token
from spectron.models import RememberResult
from spectron.scope import Scope, is_visible, scope_key
from spectron.scope_tree import ScopeTree
from spectron.session import Session, Sessions
from spectron.verification import LogVerification

DEFAULT_TIMEOUT = 30.0
M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


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
        self.sessions = Sessions(_transport(self))
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
        params = {"as_of": text} if (text := as_of_text(as_of)) is not None else None
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


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ServerUnavailable(f"the server answered an unexpected {model.__name__}") from exc


class HttpTransport:
    """Carries a session's calls to the server: opens the session there on first use."""

    def __init__(self, client: HttpSpectronClient) -> None:
        self._client = client
        self.session_id: str | None = None
        self.principal: str | None = None
        self.capabilities: list[str] = []

    async def open(self, scope: Scope) -> None:
        """Open the session on the server (once); the server checks the key's floor."""
        if self.session_id is None:
            info = await self._client.request("POST", "/v1/sessions", {"scope": scope})
            self.session_id = str(info["session_id"])
            self.principal = str(info["principal"])
            self.capabilities = list(info["capabilities"])

    async def close(self) -> None:
        """Close the session on the server, if it was opened."""
        if self.session_id is not None:
            await self._client.request("DELETE", f"/v1/sessions/{self.session_id}")

    async def send(self, scope: Scope, call: Call[R]) -> R:
        """Send `call` as its request on the session's URL; its result from the answer."""
        wire = call.wire()
        await self.open(scope)
        path = f"/v1/sessions/{self.session_id}/{wire.path}"
        # a strong read also waits for this client's own acknowledged writes, on any server
        token = self._client.read_token(scope) if wire.strong else None
        answer = await self._client.request(
            wire.method, path, wire.body, wire.params, wire.wait, token
        )
        result = call.parse(answer)
        if wire.written and isinstance(result, RememberResult):
            self._client.note_write(scope, result)
        return result


def _transport(client: HttpSpectronClient) -> Callable[[str | None], HttpTransport]:
    def make(principal: str | None) -> HttpTransport:
        if principal is not None:
            raise InvalidInput("over HTTP the principal comes from the API key; do not pass one")
        return HttpTransport(client)

    return make


# the session classes are the shared ones (spectron.session); these names stay for callers
HttpSession = Session
HttpSessions = Sessions

__all__ = ["HttpSession", "HttpSessions", "HttpSpectronClient", "HttpTransport", "SpectronError"]
