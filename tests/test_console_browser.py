"""The web console in a real browser (Playwright driving Debian's Chromium) against a real
`spectron serve` on the embedded default: sign in, the seed's memories, State with the pricing
conflict, time travel, forget, a read-only key, audit and health. Screenshots of every view (desktop
and phone width) land in test-artifacts/console/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from spectron import SpectronClient
from tests.serve_support import serving

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "console"
SHARED = {"org": "acme", "project": "market-research-q3"}
WAIT_MS = 60_000  # generous bound for any one UI condition (CI may be slow and busy)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)


def chromium_path() -> str:
    """Debian's Chromium (scripts/test.sh installs it); skip locally, fail in CI, when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is needed: scripts/test.sh installs it with apt-get")
        pytest.skip("install Debian's chromium (scripts/test.sh does)")
    return found


def cli(env: dict[str, str], *args: str) -> str:
    """Run the `spectron` command line; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "spectron.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def make_key(url: str, admin: str, principal: str, floor: dict[str, str], caps: list[str]) -> str:
    """A key created through the API by the admin key; its secret."""
    made = httpx.post(
        f"{url}/v1/keys",
        json={"principal": principal, "scope_floor": floor, "capabilities": caps},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["secret"])


async def seed(url: str, keys: dict[str, str]) -> dict[str, Any]:
    """The seed page's shared-scope scenario, then two agents disagreeing about a price."""
    a = SpectronClient(base_url=url, api_key=keys["a"])
    b = SpectronClient(base_url=url, api_key=keys["b"])
    try:
        async with a.sessions.create(scope=SHARED) as session_a:
            await session_a.remember(
                content="Competitor X launched a new pricing tier at $299/mo targeting SMBs.",
                memory_category="knowledge",
            )
            await session_a.remember(
                content="Customer segment 'enterprise' values compliance features most.",
                memory_category="knowledge",
                metadata={"source": "customer-interview-2024-q3", "agent": "interview-agent"},
            )
        async with a.sessions.create(scope={**SHARED, "agent": "worker-1"}) as worker:
            await worker.remember("Competitor X raised prices by 20% in Q2.")
            rumour = await worker.remember("Competitor Y is rumoured to cut its SMB price.")
        async with a.sessions.create(scope=SHARED) as session_a:
            await session_a.remember("Competitor X's Pro tier costs $299/mo.")
            # strong reads wait for the facts: the old value is in the state before the new write
            first = await session_a.get_state()
            assert "$299/mo" in first.formatted
        async with b.sessions.create(scope=SHARED) as session_b:
            newer = await session_b.remember("Competitor X's Pro tier costs $349/mo.")
            state = await session_b.get_state()
            assert "superseded by $349/mo" in state.formatted
        return {"rumour": rumour, "newer": newer}
    finally:
        await a.close()
        await b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`spectron serve` on the embedded default (its own home), seeded, with keys for each role."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRON_")}
    env.update(
        SPECTRON_HOME=str(tmp_path_factory.mktemp("console-home")),
        SPECTRON_EMBEDDER="hashing",
        SPECTRON_READ_TIMEOUT="10",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    with serving(env, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        admin = json.loads(
            cli(
                env,
                "keys",
                "create",
                "--principal",
                "user:admin",
                "--scope-floor",
                "{}",
                "--capabilities",
                "read,write,forget,admin",
                "--json",
            )
        )["secret"]
        keys = {
            "admin": admin,
            "a": make_key(url, admin, "agent:a", SHARED, ["read", "write"]),
            "b": make_key(url, admin, "agent:b", SHARED, ["read", "write"]),
            "lead": make_key(url, admin, "user:lead", {"org": "acme"}, ["read", "forget"]),
            "auditor": make_key(url, admin, "user:auditor", {"org": "acme"}, ["read"]),
        }
        seeded = asyncio.run(seed(url, keys))
        yield {"url": url, "keys": keys, "home": env["SPECTRON_HOME"], **seeded}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    """A fresh tab (its own sessionStorage) in UTC, so the date-time input speaks UTC."""
    context = browser.new_context(viewport=viewport, timezone_id="UTC", locale="en-GB")
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def sign_in(page: Any, url: str, secret: str, path: str = "/ui") -> None:
    """Open the console and sign in by keyboard: the labelled field, then Enter."""
    page.goto(url + path)
    field = page.get_by_label("API key")
    expect(field).to_be_focused()
    page.keyboard.type(secret)
    page.keyboard.press("Enter")
    expect(page.locator("#principal")).to_be_visible()


def shot(page: Any, name: str) -> None:
    """Save the whole page, and (at phone width) also the first screen as a phone shows it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if page.viewport_size["width"] <= PHONE["width"]:
        page.screenshot(path=str(ARTIFACTS / f"{name}-screen.png"))


def scoped(view: str, scope: dict[str, str], **extra: str) -> str:
    query = f"scope={quote(json.dumps(scope, separators=(',', ':')))}"
    for name, value in extra.items():
        query += f"&{name}={quote(value)}"
    return f"/ui/{view}?{query}"


def test_sign_in_scopes_and_the_seed_memories(server, browser) -> None:
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["lead"])
    expect(page.get_by_role("heading", name="Scopes", exact=True)).to_be_visible()
    assert "sk_" not in page.url, "the key never goes into a URL"
    tree = page.locator(".tree")
    expect(tree).to_contain_text("org=acme / project=market-research-q3")
    expect(tree).to_contain_text("agent=worker-1")
    shot(page, "scopes-desktop")
    page.get_by_role("link", name="Memories at org=acme / project=market-research-q3").click()
    cards = page.locator("li.memory")
    expect(cards.filter(has_text="launched a new pricing tier at $299/mo")).to_have_count(1)
    enterprise = cards.filter(has_text="'enterprise' values compliance features most.")
    expect(enterprise).to_contain_text("customer-interview-2024-q3")
    expect(enterprise).to_contain_text("agent:a")
    expect(cards.filter(has_text="Competitor X raised prices by 20% in Q2.")).to_contain_text(
        "agent=worker-1"
    )
    assert re.search(r"/ui/memories\?scope=", page.url)
    shot(page, "memories-desktop")
    page.get_by_label("Query (empty: newest first)").fill("competitor pricing")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".summary")).to_contain_text("best matches for “competitor pricing”")
    assert "q=competitor+pricing" in page.url or "q=competitor%20pricing" in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("API key")).to_be_visible()
    page.get_by_label("API key").fill("sk_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown API key")
    expect(page.get_by_label("API key")).to_be_visible()
    page.context.close()


def test_state_shows_the_conflict_and_time_travels(server, browser) -> None:
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["lead"], scoped("state", SHARED))
    conflict = page.locator(".conflict").filter(has_text="pro_tier_price")
    expect(conflict).to_contain_text("was $299/mo → now $349/mo")
    expect(conflict).to_contain_text("$349/mo by agent:b at")
    expect(conflict).to_contain_text("$299/mo by agent:a at")
    newer = server["newer"]
    day = newer.recorded_at.strftime("%Y-%m-%d")
    expect(conflict).to_contain_text(day)
    history = page.get_by_label("History of Competitor X pro_tier_price")
    expect(history.locator("li.superseded")).to_contain_text("$299/mo")
    expect(history.locator("li.current")).to_contain_text("$349/mo")
    shot(page, "state-desktop")

    # the memory a value came from, one click away; Back returns to the state
    history.locator("li.current").get_by_role("link", name=re.compile("^Memory ")).click()
    source = page.locator("li.memory")
    expect(source).to_have_count(1)
    expect(source).to_contain_text("Competitor X's Pro tier costs $349/mo.")
    expect(source).to_contain_text("agent:b")
    expect(source).to_contain_text(f"{newer.partition}:{newer.offset}")
    page.go_back()
    history = page.get_by_label("History of Competitor X pro_tier_price")
    expect(history.locator("li.current")).to_contain_text("$349/mo")

    # just before the $349/mo write: only the old value existed
    before = (newer.recorded_at - timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    page.get_by_label("As of (your local time)").fill(before)
    page.get_by_label("As of (your local time)").dispatch_event("change")
    expect(page).to_have_url(re.compile(r"as_of="))
    history = page.get_by_label("History of Competitor X pro_tier_price")
    expect(history.locator("li.current")).to_contain_text("$299/mo")
    expect(page.locator("#view")).not_to_contain_text("$349/mo")
    expect(page.locator(".conflict")).to_have_count(0)
    shot(page, "state-as-of-desktop")

    # the slider, by keyboard: End is now (the URL drops as_of), Home the scope's first event
    slider = page.get_by_label(re.compile(r"^Log events"))
    slider.focus()
    page.keyboard.press("End")
    expect(page).not_to_have_url(re.compile(r"as_of="))
    expect(page.locator(".conflict").filter(has_text="pro_tier_price")).to_contain_text(
        "was $299/mo → now $349/mo"
    )
    page.get_by_label(re.compile(r"^Log events")).focus()
    page.keyboard.press("Home")
    expect(page).to_have_url(re.compile(r"as_of="))
    expect(page.locator(".conflict")).to_have_count(0)
    page.context.close()


def test_forget_a_memory_and_see_it_gone(server, browser) -> None:
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["lead"], scoped("memories", SHARED))
    rumour = page.locator("li.memory").filter(has_text="Competitor Y is rumoured")
    expect(rumour).to_have_count(1)
    forget = rumour.get_by_role("button", name=re.compile("^Forget memory"))
    forget.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Forget this memory?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")  # nothing is forgotten without confirming
    expect(dialog).to_have_count(0)
    expect(rumour).to_have_count(1)
    forget.click()
    expect(dialog).to_be_visible()
    shot(page, "forget-confirm-desktop")
    dialog.get_by_role("button", name="Forget", exact=True).click()
    expect(page.locator("#status")).to_have_text("Memory forgotten.")
    expect(page.locator("li.memory").filter(has_text="Competitor Y is rumoured")).to_have_count(0)
    expect(page.locator("li.memory").filter(has_text="Pro tier costs $349/mo")).to_have_count(1)
    # the API agrees: the memory is gone for every reader
    headers = {"Authorization": f"Bearer {server['keys']['auditor']}"}
    opened = httpx.post(f"{server['url']}/v1/sessions", json={"scope": SHARED}, headers=headers)
    sid = opened.json()["session_id"]
    gone = httpx.get(
        f"{server['url']}/v1/sessions/{sid}/memories/{server['rumour'].id}", headers=headers
    )
    assert gone.status_code == 404
    # the audit still says who wrote it and who forgot it, without the content
    page.get_by_role("link", name="Audit", exact=True).click()
    events = page.get_by_role("region", name="Events visible from this scope")
    forgotten = events.locator("tr").filter(has_text="MemoriesForgotten")
    expect(forgotten).to_contain_text("user:lead")
    expect(events.locator("tr").filter(has_text="(content forgotten)").first).to_be_visible()
    expect(events).not_to_contain_text("Competitor Y is rumoured")
    page.context.close()


def test_a_read_only_key_sees_no_forget_action(server, browser) -> None:
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["auditor"], scoped("memories", SHARED))
    expect(page.locator("li.memory").filter(has_text="Pro tier costs $349/mo")).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile("Forget"))).to_have_count(0)
    expect(page.locator("#principal")).to_have_text("user:auditor (read)")
    # time travel on Memories: the slider's first step is the scope's first event
    page.get_by_label(re.compile(r"^Log events")).focus()
    page.keyboard.press("Home")
    expect(page).to_have_url(re.compile(r"as_of="))
    expect(page.locator("li.memory")).to_have_count(1)
    expect(page.locator("li.memory")).to_contain_text("launched a new pricing tier at $299/mo")
    # a scope outside the key's floor is refused by the server, and the console says why
    page.get_by_label("Scope (JSON)").fill('{"org":"elsewhere"}')
    page.get_by_role("button", name="Open scope").click()
    expect(page.get_by_role("alert")).to_contain_text("Scope outside floor")
    page.context.close()


def test_audit_with_verification_and_history(server, browser) -> None:
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["lead"], scoped("audit", SHARED))
    expect(page.locator(".verification .verdict")).to_contain_text("Verified:")
    expect(page.locator(".verification .verdict")).to_contain_text("every hash chain holds")
    events = page.get_by_role("region", name="Events visible from this scope")
    expect(events).to_contain_text("MemoryRecorded")
    expect(events).to_contain_text("agent:b")
    expect(events).to_contain_text("FactsExtracted")
    newer = server["newer"]
    expect(events.locator("tr").filter(has_text="Pro tier costs $349/mo.")).to_contain_text(
        f"{newer.partition}:{newer.offset}"
    )
    page.get_by_label("Entity").fill("Competitor X")
    page.get_by_label("Attribute (optional)").fill("pro_tier_price")
    page.get_by_role("button", name="Show history").click()
    rows = page.get_by_role("region", name=re.compile("^Every value of Competitor X"))
    expect(rows.locator("tbody tr")).to_have_count(2)
    expect(rows).to_contain_text("$349/mo")
    assert "entity=Competitor+X" in page.url or "entity=Competitor%20X" in page.url
    shot(page, "audit-desktop")
    page.context.close()


async def append_poison(home: str) -> tuple[int, int]:
    """Another producer's bytes in the server's log (same embedded home): a dead letter to be."""
    client = SpectronClient(home=home, embedder="hashing", extractor="none", run_projectors=False)
    try:
        service = await client.service()
        event_log: Any = service.log
        appended = await event_log.append_raw(0, None, b"\x00not an event")
        return appended.position.partition, appended.position.offset
    finally:
        await client.close()


def in_thread(coroutine: Any) -> Any:
    """Run a coroutine to completion off this thread (Playwright's sync API owns its loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for_dead_letters(url: str, secret: str, count: int) -> None:
    """Until the server's projector has dead-lettered `count` records (60 s bound)."""
    headers = {"Authorization": f"Bearer {secret}"}
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/v1/status", headers=headers).json()["dead_letters"] < count:
        assert time.monotonic() < deadline, "the poison record was never dead-lettered"
        time.sleep(0.2)


def test_health_for_an_admin_with_a_dead_letter_and_retry(server, browser) -> None:
    partition, offset = in_thread(append_poison(server["home"]))
    wait_for_dead_letters(server["url"], server["keys"]["admin"], 1)
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["admin"], "/ui/health")
    lag = page.get_by_role("region", name="Projection lag per partition")
    expect(lag.locator("tbody tr")).not_to_have_count(0)
    retry = page.get_by_role("button", name=f"Retry dead letter {partition}:{offset}")
    letters = page.get_by_role("region", name="Dead letters", exact=True)
    expect(letters).to_contain_text("not an event")
    shot(page, "health-desktop")
    retry.click()
    expect(page.locator("#status")).to_have_text("Revived 0; still dead 1.")
    expect(page.get_by_role("region", name="Dead letters", exact=True)).to_contain_text(
        f"{partition}:{offset}"
    )
    page.context.close()
    reader = open_page(browser)
    sign_in(reader, server["url"], server["keys"]["auditor"], "/ui/health")
    expect(reader.get_by_role("heading", name="Dead letters (1)")).to_be_visible()
    expect(reader.get_by_role("button", name=re.compile("Retry"))).to_have_count(0)
    reader.context.close()


def test_phone_width_views(server, browser) -> None:
    page = open_page(browser, PHONE)
    sign_in(page, server["url"], server["keys"]["lead"], scoped("state", SHARED))
    expect(page.locator(".conflict").filter(has_text="pro_tier_price")).to_contain_text(
        "was $299/mo → now $349/mo"
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width}px)"
    shot(page, "state-phone")
    page.get_by_role("link", name="Memories", exact=True).click()
    expect(page.locator("li.memory").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "memories-phone")
    page.get_by_role("link", name="Scopes", exact=True).click()
    expect(page.locator(".tree")).to_be_visible()
    shot(page, "scopes-phone")
    for view, ready in (("audit", ".verification .verdict"), ("health", ".stats")):
        page.get_by_role("link", name=view.capitalize(), exact=True).click()
        expect(page.locator(ready)).to_be_visible()
        # wide tables scroll inside their own region, never the page
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], view
        if view == "audit":
            page.get_by_role("heading", name="Who did what").scroll_into_view_if_needed()
        shot(page, f"{view}-phone")
    page.context.close()


def test_one_session_per_scope_kept_across_reloads_and_a_restart_keeps_the_key(
    server, browser
) -> None:
    """A key holds at most so many open sessions: the console must not spend them per page load."""
    page = open_page(browser)
    opened: list[str] = []

    def count(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/v1/sessions"):
            opened.append(request.url)

    page.on("request", count)
    sign_in(page, server["url"], server["keys"]["lead"], scoped("state", SHARED))
    conflict = page.locator(".conflict").filter(has_text="pro_tier_price")
    expect(conflict).to_contain_text("was $299/mo → now $349/mo")
    assert len(opened) == 1, "the view's two loads share one session"
    page.reload()
    expect(conflict).to_contain_text("was $299/mo → now $349/mo")
    assert len(opened) == 1, "a reload reuses the tab's session"

    # the server answering 503 (a restart) is no reason to forget the key
    problem = {
        "type": "https://spectron.dev/problems/store-unavailable",
        "title": "Store unavailable",
        "status": 503,
        "detail": "the database is restarting",
    }
    page.route(
        "**/v1/whoami",
        lambda route: route.fulfill(
            status=503, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("the database is restarting")
    assert page.evaluate("sessionStorage.getItem('spectron.apiKey')") == server["keys"]["lead"]
    page.unroute("**/v1/whoami")
    page.reload()
    expect(conflict).to_contain_text("was $299/mo → now $349/mo")
    page.context.close()


def test_scopes_above_the_floor_are_listed_without_links(server, browser) -> None:
    url, headers = server["url"], {"Authorization": f"Bearer {server['keys']['admin']}"}
    opened = httpx.post(f"{url}/v1/sessions", json={"scope": {"org": "acme"}}, headers=headers)
    path = f"{url}/v1/sessions/{opened.json()['session_id']}"
    note = {"content": "Org-wide: budgets are reviewed quarterly."}
    assert httpx.post(f"{path}/remember", json=note, headers=headers).status_code == 201
    httpx.delete(path, headers=headers)
    page = open_page(browser)
    sign_in(page, server["url"], server["keys"]["a"], "/ui/scopes")  # floor: the shared project
    tree = page.locator(".tree")
    expect(tree).to_contain_text("Above your key's floor")
    expect(page.get_by_role("link", name="Memories at org=acme", exact=True)).to_have_count(0)
    shared = "Memories at org=acme / project=market-research-q3"
    page.get_by_role("link", name=shared, exact=True).click()
    expect(page.locator("li.memory").filter(has_text="budgets are reviewed")).to_have_count(1)
    page.context.close()
