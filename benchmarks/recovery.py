"""How `spectron serve` rides out a kill -9 of its embedded Postgres.

    python -m benchmarks.recovery [--kills 3] [--agents 4]

Starts `spectron serve` over a fresh embedded home, lets a few agents remember in a closed loop,
kills the postmaster, and measures from the kill: how long requests answered meanwhile took (each
must be a 503 store-unavailable with Retry-After, or a success), and how long until `remember`
succeeds again. Before the fix every request held 30 s and answered 500, for minutes.
At the end every acknowledged memory must be recallable (by its unique token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.load_http import create_key, free_port, start_server, wait_ready

STORE_UNAVAILABLE = "https://spectron.dev/problems/store-unavailable"


@dataclass
class Outage:
    """One kill: the answers while down and how long until writes worked again."""

    refused_ms: list[float] = field(default_factory=list)  # latency of each 503 answer
    late: list[float] = field(default_factory=list)  # seconds after recovery of a later 503
    other_errors: list[str] = field(default_factory=list)
    recovered_s: float = 0.0


def postmaster_pid(home: Path) -> int:
    """The pid in the home's postmaster.pid."""
    return int((home / "pgdata" / "postmaster.pid").read_text().split()[0])


async def agent(http: httpx.AsyncClient, name: str, state: dict[str, object]) -> None:
    """Remember notes with unique tokens until told to stop; record answers by outcome."""
    created = await http.post("/v1/sessions", json={"scope": {"org": "bench", "agent": name}})
    created.raise_for_status()
    session = f"/v1/sessions/{created.json()['session_id']}"
    acked: dict[str, str] = state["acked"]  # type: ignore[assignment]
    n = 0
    while not state["stop"]:
        n += 1
        token = f"recovery-{name}-{n}"
        started = time.monotonic()
        try:
            response = await http.post(f"{session}/remember", json={"content": f"{token} note"})
        except httpx.TransportError:  # a keep-alive connection closed under the request: retry
            state["transport_errors"] = int(state["transport_errors"]) + 1  # type: ignore[call-overload]
            continue
        took = (time.monotonic() - started) * 1000
        outage: Outage | None = state["outage"]  # type: ignore[assignment]
        if response.status_code == 201:
            acked[token] = f"{session}|{response.json()['id']}"
            # a request begun before the kill may commit before it: not a recovery
            if outage is not None and not outage.recovered_s and started > state["killed_at"]:  # type: ignore[operator]
                outage.recovered_s = time.monotonic() - float(state["killed_at"])  # type: ignore[arg-type]
        elif outage is not None or state["last"] is not None:
            outage = outage or state["last"]  # type: ignore[assignment]
            assert outage is not None
            is_503 = (
                response.status_code == 503 and response.json().get("type") == STORE_UNAVAILABLE
            )
            if is_503 and "retry-after" in response.headers:
                outage.refused_ms.append(took)
                if outage.recovered_s:
                    since = time.monotonic() - float(state["killed_at"]) - outage.recovered_s  # type: ignore[arg-type]
                    outage.late.append(since)
                await asyncio.sleep(float(response.headers["retry-after"]) / 4)
            else:
                outage.other_errors.append(f"{response.status_code} {response.text[:120]}")
        else:
            raise RuntimeError(f"error outside an outage: {response.status_code} {response.text}")


async def run(kills: int, agents: int) -> list[Outage]:
    """Start the server, kill its Postgres `kills` times under load, verify, and stop."""
    root = Path(tempfile.mkdtemp(prefix="spectron-recovery-"))
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRON_")}
    env.update(SPECTRON_HOME=str(home), SPECTRON_EMBEDDER="hashing", SPECTRON_EXTRACTOR="none")
    secret = await asyncio.to_thread(create_key, env, "bench:recovery")
    port = free_port()
    server = await asyncio.to_thread(start_server, env, port, root / "serve.log")
    url = f"http://127.0.0.1:{port}"
    outages: list[Outage] = []
    state: dict[str, object] = {
        "stop": False,
        "outage": None,
        "acked": {},
        "killed_at": 0.0,
        "last": None,
        "transport_errors": 0,
    }
    try:
        await wait_ready(url, server)
        headers = {"Authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60.0) as http:
            tasks = [asyncio.create_task(agent(http, f"a{i}", state)) for i in range(agents)]
            for _ in range(kills):
                await asyncio.sleep(2.0)  # steady writing before each kill
                outage = Outage()
                state["outage"], state["killed_at"] = outage, time.monotonic()
                os.kill(postmaster_pid(home), signal.SIGKILL)
                while not outage.recovered_s:
                    if time.monotonic() - float(state["killed_at"]) > 300:  # type: ignore[arg-type]
                        raise RuntimeError("no recovery within 300 s")
                    await asyncio.sleep(0.05)
                outages.append(outage)
                state["outage"], state["last"] = None, outage
            state["stop"] = True
            await asyncio.gather(*tasks)
            acked: dict[str, str] = state["acked"]  # type: ignore[assignment]
            missing = 0
            for token, where in acked.items():
                session, memory_id = where.split("|")
                found = await http.post(
                    f"{session}/recall", json={"query": token, "mode": "keyword", "top_k": 3}
                )
                if memory_id not in [item["id"] for item in found.json()["items"]]:
                    missing += 1
            print(
                f"acknowledged {len(acked)}, not recallable afterwards: {missing};"
                f" connections closed under a request (retried): {state['transport_errors']}"
            )
    finally:
        log = (root / "serve.log").read_text(errors="replace").splitlines()
        print("\n".join(line for line in log if "database" in line or "Postgres" in line))
        # the last line of each server-side traceback: what a 500 was
        ends = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Disconnect|Timeout)\b")
        for n, line in enumerate(log):
            if ends.match(line):
                where = [
                    f for f in log[max(0, n - 40) : n] if "/spectron/" in f or "/projectors/" in f
                ]
                print(line, *where[-3:], sep="\n")
        server.send_signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.wait, 60)
        if sys.exc_info()[0] is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root} (serve.log) for a look", file=sys.stderr)
    return outages


def main() -> None:
    """Command line entry point: print one line per kill and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--agents", type=int, default=4)
    args = parser.parse_args()
    outages = asyncio.run(run(args.kills, args.agents))
    for n, outage in enumerate(outages, 1):
        refused = outage.refused_ms or [0.0]
        print(
            f"kill {n}: writes again after {outage.recovered_s:.1f}s; {len(outage.refused_ms)}"
            f" answers 503+Retry-After meanwhile (p50 {statistics.median(refused):.0f} ms,"
            f" max {max(refused):.0f} ms); other errors: {len(outage.other_errors)};"
            f" 503s after the first success: {[round(s, 2) for s in outage.late]}"
            + (f" e.g. {outage.other_errors[0]}" if outage.other_errors else "")
        )
    print(f"load average: {os.getloadavg()}")
    sys.exit(0 if all(not o.other_errors for o in outages) else 1)


if __name__ == "__main__":
    main()
