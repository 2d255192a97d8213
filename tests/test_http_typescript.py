"""A real `spectron serve` (uvicorn subprocess) with keys made by the CLI: the TypeScript client's
tests (the seed's snippet unchanged among them; forget, history and as_of with a `forget` key), the
Python client over HTTP, probes and metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spectron import SpectronClient
from tests.conftest import SETTLE_TIMEOUT
from tests.serve_support import serving

pytest_plugins = ["tests.http_support"]  # module_database
ROOT = Path(__file__).resolve().parent.parent
TS = ROOT / "clients" / "typescript"
SEED_FLOOR = {"org": "acme", "project": "market-research-q3"}


def spectron(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `spectron` command line (as `python -m spectron.cli`, the same app)."""
    return subprocess.run(
        [sys.executable, "-m", "spectron.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def create_key(env: dict[str, str], principal: str, floor: dict[str, str], caps: str) -> dict:
    """`spectron keys create ... --json`; the parsed output (with the secret)."""
    done = spectron(
        env,
        "keys",
        "create",
        "--principal",
        principal,
        "--scope-floor",
        json.dumps(floor),
        "--capabilities",
        caps,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def server(module_database: str, tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """`spectron serve` on a free port and a fresh database; yields its URL and environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRON_")}
    env.update(
        SPECTRON_DATABASE_URL=module_database,
        SPECTRON_EMBEDDER="hashing",
        SPECTRON_HOME=str(tmp_path_factory.mktemp("home")),
        SPECTRON_READ_TIMEOUT=str(SETTLE_TIMEOUT),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    with serving(env, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url, env


def test_typescript_client_and_the_seed_snippet(server) -> None:
    url, env = server
    npm = shutil.which("npm")
    if npm is None or not (TS / "node_modules").exists():
        if os.environ.get("CI"):
            pytest.fail("npm and clients/typescript/node_modules are needed: run scripts/test.sh")
        pytest.skip("run `npm --prefix clients/typescript ci` first (scripts/test.sh does)")
    key = create_key(env, "agent:ts", SEED_FLOOR, "read,write")
    # forget, history and as_of run in a project of their own, with a key that may forget
    forgetter = create_key(
        env, "agent:ts-forget", {"org": "acme", "project": "time-travel"}, "read,write,forget"
    )
    run_env = {
        **env,
        "SPECTRON_BASE_URL": url,
        "SPECTRON_AGENT_KEY": key["secret"],
        "SPECTRON_FORGET_KEY": forgetter["secret"],
    }
    done = subprocess.run(
        [npm, "test"], cwd=TS, env=run_env, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "# fail 0" in output and "# skipped 0" in output, output[-2000:]


async def test_python_client_runs_the_seed_supervisor_over_http(server) -> None:
    from tests.seed_support import SUPERVISOR_SCOPE, seed_worker_memories, supervisor

    url, env = server
    key = create_key(env, "agent:supervisor", SUPERVISOR_SCOPE, "read,write")
    client = SpectronClient(base_url=url, api_key=key["secret"])
    try:
        await seed_worker_memories(client)
        await supervisor(client)
        async with client.sessions.create(scope=SUPERVISOR_SCOPE) as session:
            profile = await session.profile()
            found = await session.recall(query="pricing trends", top_k=10)
    finally:
        await client.close()
    assert profile.reflections and profile.reflections[0].principal == "agent:supervisor"
    assert set(profile.counts_by_principal) == {"agent:supervisor"}
    assert any(item.scope.get("agent") == "worker-0" for item in found.items)


def test_keys_list_and_revoke_through_the_cli(server) -> None:
    url, env = server
    key = create_key(env, "agent:short-lived", {"org": "acme"}, "read")
    listed = json.loads(spectron(env, "keys", "list", "--json").stdout)
    mine = [k for k in listed if k["key_id"] == key["key_id"]]
    assert mine and "secret" not in mine[0] and mine[0]["revoked_at"] is None
    headers = {"Authorization": f"Bearer {key['secret']}"}
    opened = httpx.post(f"{url}/v1/sessions", json={"scope": {"org": "acme"}}, headers=headers)
    assert opened.status_code == 201
    assert spectron(env, "keys", "revoke", key["key_id"]).returncode == 0
    refused = httpx.post(f"{url}/v1/sessions", json={"scope": {"org": "acme"}}, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert spectron(env, "keys", "revoke", "key_missing").returncode == 1
    bad = spectron(env, "keys", "create", "--principal", "agent:x", "--scope-floor", "[1]")
    assert bad.returncode == 2


def test_probes_metrics_and_docs(server) -> None:
    url, env = server
    key = create_key(env, "agent:metrics", {"org": "acme"}, "read,write")
    headers = {"Authorization": f"Bearer {key['secret']}"}
    session = httpx.post(f"{url}/v1/sessions", json={"scope": {"org": "acme"}}, headers=headers)
    sid = session.json()["session_id"]
    remembered = httpx.post(
        f"{url}/v1/sessions/{sid}/remember", json={"content": "Metrics note."}, headers=headers
    )
    assert remembered.status_code == 201
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{url}/readyz").json()["status"] == "ok"
    for made_up in ("M1", "M2"):  # any token is a method to the HTTP parser
        assert httpx.request(made_up, f"{url}/v1/whoami").status_code >= 400
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'method="M1"' not in text and 'method="other"' in text, "a bounded set of labels"
    assert 'route="/v1/sessions/{session_id}/remember"' in text
    assert sid not in text, "route templates, not raw paths, label the latency histogram"
    assert 'spectron_append_duration_seconds_count{operation="remember"}' in text
    assert "spectron_projection_lag_events{partition=" in text
    assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "Spectron"
    assert "swagger" in httpx.get(f"{url}/docs").text.lower()
