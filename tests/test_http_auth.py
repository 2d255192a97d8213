"""Authorisation over HTTP: scope floors, capabilities, revocation, missing keys, and who wrote what."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectron.events import EntityTypeRegistered, MemoryRecorded, ReflectionRecorded
from spectron.http.keys import revoke_key
from spectron.log import decode_record
from spectron.scope import canonical_scope, is_visible, is_within, scope_key
from tests.http_support import assert_problem, fresh_org, log_size
from tests.log_support import opened

pytest_plugins = ["tests.http_support"]  # the HTTP fixtures
CAPABILITY_SETS = ["read", "write", "read,write", "admin", "read,write,forget,admin"]
# where a session is opened relative to the key's floor {org, project: p}
POSITIONS = ["inside", "at", "above", "outside", "elsewhere"]
# operation → the capabilities it needs (all of them)
NEEDS: dict[str, set[str]] = {
    "remember": {"write"},
    "recall": {"read"},
    "reflect": {"read"},
    "reflect-persist": {"read", "write"},
    "profile": {"read"},
    "state": {"read"},
    "entity-types": {"write"},
    "session-info": set(),
}


def scope_at(position: str, org: str) -> dict[str, str]:
    """A session scope relative to the floor {org, project: p}."""
    return {
        "inside": {"org": org, "project": "p", "agent": "w1"},
        "at": {"org": org, "project": "p"},
        "above": {"org": org},
        "outside": {"org": org, "project": "q"},
        "elsewhere": {"org": f"{org}-x", "project": "p"},
    }[position]


async def operate(client: httpx.AsyncClient, session_id: str, operation: str) -> httpx.Response:
    """Perform one operation with a valid body."""
    base = f"/v1/sessions/{session_id}"
    match operation:
        case "remember":
            return await client.post(f"{base}/remember", json={"content": "Pricing rose in Q2."})
        case "recall":
            return await client.post(f"{base}/recall", json={"query": "pricing"})
        case "reflect":
            return await client.post(f"{base}/reflect", json={"query": "pricing"})
        case "reflect-persist":
            return await client.post(f"{base}/reflect", json={"query": "pricing", "persist": True})
        case "profile":
            return await client.get(f"{base}/profile")
        case "state":
            return await client.get(f"{base}/state")
        case "entity-types":
            return await client.post(f"{base}/entity-types", json={"name": "Vendor"})
        case "session-info":
            return await client.get(base)
    raise AssertionError(operation)


@pytest.mark.parametrize(
    ("capabilities", "position"), list(itertools.product(CAPABILITY_SETS, POSITIONS))
)
async def test_authorisation_table(raw, make_key, service, capabilities, position) -> None:
    org = fresh_org()
    secret = await make_key(capabilities, {"org": org, "project": "p"})
    client = raw(secret)
    opened = await client.post("/v1/sessions", json={"scope": scope_at(position, org)})
    if position in ("above", "outside", "elsewhere"):
        assert_problem(opened, 403, "scope-outside-floor")
        return
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["session_id"]
    have = set(capabilities.split(","))
    for operation, needs in NEEDS.items():
        before = await log_size(service)
        response = await operate(client, session_id, operation)
        if needs <= have:
            assert response.status_code in (200, 201), (operation, response.text)
        else:
            assert_problem(response, 403, "missing-capability")
            assert await log_size(service) == before, f"refused {operation} appended"
    closed = await client.delete(f"/v1/sessions/{session_id}")
    assert closed.status_code == 204


async def test_no_key_reaches_no_data(app, raw, make_key, service) -> None:
    secret = await make_key("read,write")
    opened = await raw(secret).post("/v1/sessions", json={"scope": {"org": fresh_org()}})
    session_id = opened.json()["session_id"]
    before = await log_size(service)
    for headers in ({}, {"Authorization": "Bearer sk_not-a-key"}, {"Authorization": secret}):
        client = raw()
        for route in app.routes:
            path = getattr(route, "path", "")
            if not path.startswith("/v1/"):
                continue
            url = path.replace("{session_id}", session_id).replace("{key_id}", "key_x")
            for method in route.methods:  # type: ignore[attr-defined]
                # a valid body, and a malformed one: authentication comes before parsing
                for content in (b'{"content": "x", "query": "x", "scope": {"org": "o"}}', b"{"):
                    response = await client.request(method, url, content=content, headers=headers)
                    body = assert_problem(response, 401, "unauthenticated")
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    assert session_id not in body["detail"]
    assert await log_size(service) == before


async def test_revoked_key_gets_401_and_loses_its_sessions(raw, make_key, service) -> None:
    secret = await make_key("read,write", principal="agent:revoked")
    client = raw(secret)
    opened = await client.post("/v1/sessions", json={"scope": {"org": fresh_org()}})
    session_id = opened.json()["session_id"]
    key_id = (await client.get(f"/v1/sessions/{session_id}")).json()["principal"]
    assert key_id == "agent:revoked"
    async with service.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT key_id FROM spectron_auth.sessions WHERE session_id = %s", [session_id]
        )
        (key,) = await cur.fetchone()
        await revoke_key(conn, key)
    before = await log_size(service)
    for operation in NEEDS:
        assert_problem(await operate(client, session_id, operation), 401, "unauthenticated")
    again = await client.post("/v1/sessions", json={"scope": {"org": "o"}})
    body = assert_problem(again, 401, "unauthenticated")
    assert "revoked" in body["detail"]
    assert await log_size(service) == before


async def test_session_belongs_to_the_key_that_opened_it(raw, make_key) -> None:
    org = fresh_org()
    mine = raw(await make_key("read,write", {"org": org}))
    theirs = raw(await make_key("read,write", {"org": org}))
    opened = await mine.post("/v1/sessions", json={"scope": {"org": org}})
    session_id = opened.json()["session_id"]
    assert_problem(await operate(theirs, session_id, "recall"), 404, "session-not-found")
    assert (await operate(mine, session_id, "recall")).status_code == 200


async def test_events_carry_the_keys_principal_whatever_the_body_says(
    raw, make_key, service
) -> None:
    org = fresh_org()
    client = raw(await make_key("read,write", {"org": org}, principal="agent:w1"))
    session_id = (await client.post("/v1/sessions", json={"scope": {"org": org}})).json()[
        "session_id"
    ]
    before = await log_size(service)
    forged = [
        {"content": "forged", "principal": "agent:boss"},
        {"content": "forged", "metadata": {}, "principal": "agent:boss"},
    ]
    for body in forged:
        response = await client.post(f"/v1/sessions/{session_id}/remember", json=body)
        problem = assert_problem(response, 422, "invalid-request")
        assert "principal" in problem["detail"]
    forged_query = await client.get(f"/v1/sessions/{session_id}/state?principal=agent:boss")
    assert_problem(forged_query, 422, "invalid-request")
    assert await log_size(service) == before

    base = f"/v1/sessions/{session_id}"
    await client.post(f"{base}/remember", json={"content": "Pricing notes from Q2."})
    await client.post(
        f"{base}/remember",
        json={"content": "Provenance claims a principal.", "metadata": {"principal": "agent:x"}},
    )
    await client.post(f"{base}/reflect", json={"query": "pricing", "persist": True})
    await client.post(f"{base}/entity-types", json={"name": "Vendor"})
    recalled = (await client.post(f"{base}/recall", json={"query": "principal pricing"})).json()
    assert {item["principal"] for item in recalled["items"]} == {"agent:w1"}

    appended = []
    for partition in range(service.log.partitions):
        for record in await opened(service.pool, await service.log.read(partition, 0, 10_000)):
            event = decode_record(record).event
            if event.scope.get("org") == org and isinstance(
                event, MemoryRecorded | ReflectionRecorded | EntityTypeRegistered
            ):
                appended.append(event)
    assert len(appended) == 4
    assert {event.principal for event in appended} == {"agent:w1"}


async def test_admin_keys_manage_keys_within_their_floor(raw, make_key) -> None:
    org = fresh_org()
    admin = raw(await make_key("read,write,admin", {"org": org}))
    made = await admin.post(
        "/v1/keys",
        json={
            "principal": "agent:w2",
            "scope_floor": {"org": org, "project": "p"},
            "capabilities": ["read"],
        },
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["secret"].startswith("sk_") and created["capabilities"] == ["read"]
    listed = (await admin.get("/v1/keys")).json()
    assert created["key_id"] in {key["key_id"] for key in listed}
    assert all("secret" not in key for key in listed)
    assert all(is_within(key["scope_floor"], {"org": org}) for key in listed)
    above = await admin.post(
        "/v1/keys", json={"principal": "agent:x", "scope_floor": {}, "capabilities": ["read"]}
    )
    assert_problem(above, 403, "scope-outside-floor")
    wider = await admin.post(
        "/v1/keys",
        json={"principal": "agent:x", "scope_floor": {"org": org}, "capabilities": ["forget"]},
    )
    assert_problem(wider, 403, "forbidden")
    reader = raw(created["secret"])
    assert_problem(await reader.get("/v1/keys"), 403, "missing-capability")
    opened = await reader.post("/v1/sessions", json={"scope": {"org": org, "project": "p"}})
    assert opened.status_code == 201
    revoked = await admin.delete(f"/v1/keys/{created['key_id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert_problem(
        await reader.post("/v1/sessions", json={"scope": {"org": org, "project": "p"}}),
        401,
        "unauthenticated",
    )


# ---- property: random scope trees, random floors: no read outside the floor ----

DIMENSIONS = ("project", "team", "agent")
node = st.dictionaries(st.sampled_from(DIMENSIONS), st.sampled_from(["a", "b"]), max_size=3)


def conflicts(memory: dict[str, str], floor: dict[str, str]) -> bool:
    """The memory names a floor dimension with another value: it lies in another branch."""
    return any(memory.get(key, value) != value for key, value in floor.items())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=st.lists(node, min_size=2, max_size=7), floor=node, sessions=st.lists(node, max_size=4))
async def test_no_read_outside_the_floor(raw, make_key, service, tree, floor, sessions) -> None:
    org = fresh_org()
    scopes = {scope_key(s): s for s in (canonical_scope({"org": org, **n}) for n in tree)}
    writer = raw(await make_key("read,write"))
    for key, scope in scopes.items():
        sid = (await writer.post("/v1/sessions", json={"scope": scope})).json()["session_id"]
        await writer.post(f"/v1/sessions/{sid}/remember", json={"content": f"marker at {key}"})
    key_floor = canonical_scope({"org": org, **floor})
    reader = raw(await make_key("read", key_floor))
    for wanted in [*scopes.values(), *(canonical_scope({"org": org, **n}) for n in sessions)]:
        opened = await reader.post("/v1/sessions", json={"scope": wanted})
        if not is_within(wanted, key_floor):
            assert_problem(opened, 403, "scope-outside-floor")
            continue
        sid = opened.json()["session_id"]
        found = await reader.post(
            f"/v1/sessions/{sid}/recall", json={"query": "marker", "top_k": 100, "mode": "keyword"}
        )
        profile = (await reader.get(f"/v1/sessions/{sid}/profile")).json()
        seen = [item["scope"] for item in found.json()["items"] + profile["recent"]]
        assert not any(conflicts(scope, key_floor) for scope in seen)
        got = {scope_key(item["scope"]) for item in found.json()["items"]}
        assert got == {k for k, m in scopes.items() if is_visible(m, wanted)}
