"""Read your writes across servers: HTTP clients pass on the positions of their own writes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI

from spectron.http.client import HttpSpectronClient
from spectron.log.owed import READ_AFTER_HEADER
from tests.http_support import BASE, MakeKey, fresh_org

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures


class Recording(httpx.AsyncBaseTransport):
    """The app's own ASGI transport, keeping each request's read-your-writes header."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.sent: list[tuple[str, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(
            (request.url.path.rsplit("/", 1)[-1], request.headers.get(READ_AFTER_HEADER))
        )
        return await self.inner.handle_async_request(request)


async def test_strong_reads_send_the_writes_their_scope_can_see(
    app: FastAPI, make_key: MakeKey
) -> None:
    transport = Recording(app)
    client = HttpSpectronClient(BASE, await make_key("read,write"), transport=transport)
    org = fresh_org()
    try:
        async with client.sessions.create(scope={"org": org, "agent": "a"}) as writer:
            written = await writer.remember("the heron count is 12")
            await writer.recall("heron")
            assert transport.sent[-1] == ("recall", f"{written.partition}:{written.offset}")
            await writer.recall("heron", consistency="eventual")
            assert transport.sent[-1] == ("recall", None)
        async with client.sessions.create(scope={"org": org}) as parent:
            found = await parent.recall("heron")  # the org sees its agent's write, and waits for it
            assert [item.id for item in found.items] == [written.id]
            assert transport.sent[-1][1] == f"{written.partition}:{written.offset}"
            await parent.get_state()
            assert transport.sent[-1] == ("state", f"{written.partition}:{written.offset}")
        async with client.sessions.create(scope={"org": org, "agent": "b"}) as sibling:
            await sibling.recall("heron")  # a sibling cannot see the write: nothing to wait for
            assert transport.sent[-1] == ("recall", None)
    finally:
        await client.close()


async def test_a_malformed_token_is_a_problem_and_a_foreign_one_is_capped(
    raw: Callable[..., httpx.AsyncClient], make_key: MakeKey
) -> None:
    http = raw(await make_key("read,write"))
    opened = await http.post("/v1/sessions", json={"scope": {"org": fresh_org()}})
    recall = f"/v1/sessions/{opened.json()['session_id']}/recall"
    bad = await http.post(recall, json={"query": "heron"}, headers={READ_AFTER_HEADER: "3:x"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    # offsets another log wrote (beyond this log's end) are capped at the end: answered at once
    far = await http.post(
        recall, json={"query": "heron", "timeout": 30}, headers={READ_AFTER_HEADER: "0:999999999"}
    )
    assert far.status_code == 200 and far.json()["items"] == []
