"""Tamper evidence on the embedded log: the hash chain names the first altered, removed or moved record."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spectron.log.postgres import PostgresEventLog

SCOPE = {"org": "acme", "project": "audit"}


async def logged(make_client, n: int = 6):
    client = make_client(run_projectors=False, extractor="none")
    service = await client.service()
    async with client.sessions.create(scope=SCOPE) as s:
        results = [await s.remember(f"audited note {i}") for i in range(n)]
    assert isinstance(service.log, PostgresEventLog)
    return service, results[0].partition


async def test_untouched_log_verifies(make_client) -> None:
    service, _ = await logged(make_client)
    verified = await service.log.verify_chain()
    checked, breaks = verified.checked, verified.breaks
    assert checked == 6 and breaks == []


@pytest.mark.parametrize(
    ("tamper", "offset", "reason"),
    [
        (
            "UPDATE spectron_log.events SET value = overlay(value placing 'X'::bytea from 40 for 1)"
            ' WHERE partition = %(p)s AND "offset" = 3',
            3,
            "does not match its hash",
        ),
        ('DELETE FROM spectron_log.events WHERE partition = %(p)s AND "offset" = 2', 2, "missing"),
        (
            "UPDATE spectron_log.events e SET value = o.value FROM spectron_log.events o"
            " WHERE e.partition = %(p)s AND o.partition = %(p)s"
            ' AND ((e."offset", o."offset") IN ((1, 4), (4, 1)))',
            1,
            "does not match its hash",
        ),
        (
            "UPDATE spectron_log.events SET recorded_at = recorded_at - interval '1 hour'"
            ' WHERE partition = %(p)s AND "offset" = 5',
            5,
            "does not match its hash",
        ),
        # the newest records deleted: what is left chains fine, but ends short of the partition
        (
            'DELETE FROM spectron_log.events WHERE partition = %(p)s AND "offset" >= 4',
            4,
            "offsets 4 to 5 missing",
        ),
        (
            "UPDATE spectron_log.partitions SET last_hash = sha256('forged') WHERE partition = %(p)s",
            5,
            "not the partition's recorded head",
        ),
    ],
    ids=["altered byte", "removed", "reordered", "backdated", "truncated", "head replaced"],
)
async def test_tampering_is_named(make_client, tamper, offset, reason) -> None:
    service, partition = await logged(make_client)
    async with service.pool.connection() as conn:
        await conn.execute(tamper, {"p": partition})
    breaks = (await service.log.verify_chain()).breaks
    assert [(b.partition, b.offset) for b in breaks] == [(partition, offset)]
    assert reason in breaks[0].reason


def test_cli_log_verify(tmp_path) -> None:
    script = (
        "import asyncio\n"
        "from spectron import SpectronClient\n"
        "async def main():\n"
        f"    async with SpectronClient(home={str(tmp_path)!r}, embedder='hashing') as c:\n"
        "        async with c.sessions.create(scope={'org': 'a'}) as s:\n"
        "            await s.remember('one byte of this will change')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    cli = [sys.executable, "-m", "spectron.cli", "log", "verify", "--home", str(tmp_path)]
    ok = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "checked" in ok.stdout
    assert "head " in ok.stdout, "the heads to keep elsewhere as an anchor are printed"


def test_cli_rebuild_verify_catches_the_live_state_up_first(tmp_path) -> None:
    """Written with no projector running, the live state is behind: not a difference to report."""
    script = (
        "import asyncio\n"
        "from spectron import SpectronClient\n"
        "async def main():\n"
        f"    async with SpectronClient(home={str(tmp_path)!r}, embedder='hashing',"
        " run_projectors=False) as c:\n"
        "        async with c.sessions.create(scope={'org': 'a'}) as s:\n"
        "            for n in range(3):\n"
        "                await s.remember(f'Competitor X note {n}: the Pro tier costs ${n}99/mo.')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    env = {**os.environ, "SPECTRON_EMBEDDER": "hashing"}
    cli = [sys.executable, "-m", "spectron.cli", "rebuild", "--verify", "--home", str(tmp_path)]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "state differs" not in done.stdout
