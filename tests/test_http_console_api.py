"""What the console reads, for API users too: list and get memories, the scope tree, audit, log
status and verification, dead letters — on both Python transports, with capability checks.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from spectron import InvalidInput, LogPosition, MemoryNotFound, SpectronError
from tests.http_support import fresh_org

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures
PROBLEM = "application/problem+json"
UI_FILES = sorted((Path(__file__).resolve().parent.parent / "spectron" / "http" / "ui").iterdir())


async def test_list_newest_first_in_pages_with_filters_as_of_and_get(client) -> None:
    shared = {"org": fresh_org(), "project": "p"}
    async with client.sessions.create(scope=shared) as s:
        written = [
            await s.remember(f"Note {n} about pricing.", metadata={"n": str(n)}) for n in range(5)
        ]
        await s.remember("An episode.", memory_category="episodic")
    async with client.sessions.create(scope={**shared, "agent": "w1"}) as w1:
        own = await w1.remember("Worker one's note.")
    async with client.sessions.create(scope={**shared, "agent": "w2"}) as w2:
        await w2.remember("Worker two's note.")
        seen = await w2.memories(limit=100)
        assert own.id not in {m.id for m in seen.items}, "a sibling's memory is never listed"
        assert len(seen.items) == 7 and seen.next_cursor is None
    async with client.sessions.create(scope=shared) as s:
        first = await s.memories(limit=4)
        assert len(first.items) == 4 and first.next_cursor is not None
        rest = await s.memories(limit=4, cursor=first.next_cursor)
        listed = first.items + rest.items
        assert rest.next_cursor is None and len(listed) == 8
        keys = [(m.recorded_at, m.partition, m.offset) for m in listed]
        assert keys == sorted(keys, reverse=True), "newest first, by log time then position"
        knowledge = await s.memories(memory_category="knowledge", metadata={"n": "3"})
        assert [m.id for m in knowledge.items] == [written[3].id]
        episodes = await s.memories(memory_category="episodic")
        assert [m.content for m in episodes.items] == ["An episode."]
        then = await s.memories(as_of=written[1].recorded_at, limit=100)
        assert {m.id for m in then.items} == {written[0].id, written[1].id}
        at_position = LogPosition(written[1].partition, written[1].offset)
        assert await s.memories(as_of=at_position, limit=100) == then
        one = await s.memory(written[2].id)
        assert (one.content, one.partition, one.offset) == (
            "Note 2 about pricing.",
            written[2].partition,
            written[2].offset,
        )
        assert one.scope == shared and one.principal and one.metadata == {"n": "2"}
        with pytest.raises(MemoryNotFound):
            await s.memory(written[2].id, as_of=written[1].recorded_at)
        with pytest.raises(InvalidInput):
            await s.memories(cursor="not-a-cursor")
        with pytest.raises(InvalidInput):
            await s.memories(limit=0)
    async with client.sessions.create(scope={**shared, "agent": "w2"}) as w2:
        with pytest.raises(MemoryNotFound):
            await w2.memory(own.id)


async def test_forgotten_memory_is_gone_from_list_and_get(client) -> None:
    shared = {"org": fresh_org(), "project": "p"}
    async with client.sessions.create(scope=shared) as s:
        kept = await s.remember("Keep this.")
        gone = await s.remember("Forget this.")
        await s.forget(gone.id)
        assert [m.id for m in (await s.memories()).items] == [kept.id]
        with pytest.raises(MemoryNotFound):
            await s.memory(gone.id)
        with pytest.raises(MemoryNotFound):
            await s.memory(uuid.uuid4())


async def test_scope_tree_audit_status_and_verification(client, service) -> None:
    org = fresh_org()
    shared = {"org": org, "project": "p"}
    async with client.sessions.create(scope=shared) as s:
        first = await s.remember("Project note.", memory_category="episodic")
    async with client.sessions.create(scope={**shared, "agent": "w1"}) as w1:
        await w1.remember("Worker note.")
        await w1.remember("Another worker note.")
    tree = await client.scopes()
    mine = {node.key: node for node in tree.nodes if node.scope.get("org") == org}
    assert len(mine) == 2
    [project] = [n for n in mine.values() if n.scope == shared]
    [worker] = [n for n in mine.values() if n.scope == {**shared, "agent": "w1"}]
    assert project.memories == 1 and project.by_category == {"episodic": 1}
    assert worker.memories == 2 and worker.parent == project.key and project.parent is None
    assert sum(worker.by_principal.values()) == 2
    async with client.sessions.create(scope=shared) as s:
        writer = (await s.memory(first.id)).principal
        # enrichment appends MemoryEmbedded events as system:enricher: ask for the writer's only
        page = await s.audit(limit=2, principal=writer)
        assert len(page.items) == 2 and page.matched == 3 and page.truncated
        assert [r.summary for r in page.items] == ["Another worker note.", "Worker note."]
        everything = await s.audit(principal=writer)
        assert everything.items[-1].event_id == first.id
        assert everything.items[-1].position.partition == first.partition
        assert {r.type for r in everything.items} == {"MemoryRecorded"}
        assert {r.principal for r in everything.items} == {writer}
        since = await s.audit(principal=writer, since=everything.items[0].recorded_at)
        assert since.items == [page.items[0]]
    status = await client.status()
    assert len(status.partitions) == service.log.partitions
    assert all(p.lag == p.log_end - p.projected >= 0 for p in status.partitions)
    assert status.memories >= 3 and status.dead_letters >= 0
    verification = await client.verify_log()
    assert verification.verified and not verification.breaks
    assert verification.checked >= 3 and verification.partitions == service.log.partitions


async def test_capabilities_and_problems_over_http(raw, make_key) -> None:
    org = fresh_org()
    floor = {"org": org}
    writer = raw(await make_key("write", floor))
    reader = raw(await make_key("read", floor, principal="user:auditor"))
    opened = await writer.post("/v1/sessions", json={"scope": floor})
    sid = opened.json()["session_id"]
    answer = await writer.get(f"/v1/sessions/{sid}/memories")
    assert answer.status_code == 403 and answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/missing-capability")
    for path in ("/v1/scopes", "/v1/status", "/v1/log/verification"):
        refused = await writer.get(path)
        assert refused.status_code == 403, path
    me = await reader.get("/v1/whoami")
    assert me.json()["principal"] == "user:auditor" and me.json()["capabilities"] == ["read"]
    assert me.json()["scope_floor"] == floor and "secret" not in me.json()
    rsid = (await reader.post("/v1/sessions", json={"scope": floor})).json()["session_id"]
    missing = await reader.get(f"/v1/sessions/{rsid}/memories/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/memory-not-found")
    bad = await reader.get(f"/v1/sessions/{rsid}/memories", params={"limit": "0"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    unknown = await reader.get(f"/v1/sessions/{rsid}/memories", params={"colour": "red"})
    assert unknown.status_code == 422
    bad_meta = await reader.get(f"/v1/sessions/{rsid}/memories", params={"metadata": "{"})
    assert bad_meta.status_code == 422 and "metadata" in bad_meta.json()["detail"]
    assert (await raw().get("/v1/status")).status_code == 401
    assert (await reader.get("/v1/dead-letters")).status_code == 403


async def test_dead_letters_need_an_unrestricted_admin(http_client, make_key) -> None:
    floored = await http_client(await make_key("read,admin", {"org": fresh_org()}))
    with pytest.raises(SpectronError) as refused:
        await floored.dead_letters()
    assert (refused.value.type, refused.value.status) == ("scope-outside-floor", 403)
    reader = await http_client(await make_key("read"))
    with pytest.raises(SpectronError) as refused:
        await reader.retry_dead_letters()
    assert (refused.value.type, refused.value.status) == ("missing-capability", 403)
    admin = await http_client(await make_key("read,admin"))
    assert await admin.dead_letters() == []  # this module's log holds no poison
    nowhere = LogPosition(0, 10**9)
    outcome = await admin.retry_dead_letters(nowhere)
    assert outcome.missing == [nowhere] and outcome.revived == [] and outcome.kept == {}
    with pytest.raises(InvalidInput):
        await admin.request("POST", "/v1/dead-letters/retry", {"partition": 0})


async def test_the_console_is_served_at_ui_with_its_assets(raw) -> None:
    browser = raw()
    for path in ("/ui", "/ui/", "/ui/state", "/ui/memories?scope=%7B%22org%22%3A%22acme%22%7D"):
        page = await browser.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/ui/app.js">' in page.text
    media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for asset in UI_FILES:
        if asset.suffix in media:
            answer = await browser.get(f"/ui/{asset.name}")
            assert answer.status_code == 200 and answer.content == asset.read_bytes()
            assert answer.headers["content-type"].startswith(media[asset.suffix])
    missing = await browser.get("/ui/nothing.js")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert (await browser.get("/ui/sub/app.js")).status_code == 404


def test_console_assets_load_nothing_from_elsewhere_and_write_no_html() -> None:
    shipped = {path.name for path in UI_FILES}
    assert {"index.html", "app.js", "api.js", "style.css"} <= shipped
    for path in UI_FILES:
        name, text = path.name, path.read_text()
        # offline: no CDN, no remote font or script; the only URL is the SVG namespace
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}"
        assert not re.search(r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", text), (
            f"{name} must build the DOM from elements and text nodes only (content is user data)"
        )
