"""The crash test, reduced: kill -9 projectors, Kafka workers and the embedded Postgres under load.

The full run is `python -m benchmarks.crash` (10 kills of each kind per backend); see that module
for what is killed and how. Here: 3 projector and 2 Postgres kills (embedded), 3 worker kills
(Kafka), 3 kills of `spectron serve` (HTTP writer). Every acknowledged memory must be in the log and projected exactly once, and the live
state must hash like a full replay of the log.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from spectron import SpectronClient

# benchmarks/ sits beside the installed packages, not inside them: import it from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.crash import CrashConfig, CrashReport, run_crash, verify

GAP = (0.3, 1.5)  # seconds between kills, uniformly random


def check(report: CrashReport, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the report line (even under -q) and hold it to lost = duplicated = 0."""
    with capsys.disabled():
        print(f"\n{report.line()}")
    summary = f"{report}"
    assert report.acknowledged > 0, summary
    assert report.lost == 0, summary
    assert report.duplicated == 0, summary
    assert report.projected == report.acknowledged, summary
    assert report.unembedded == 0, summary
    assert report.dead_letters == 0, summary
    assert report.live_hash == report.rebuilt_hash, summary
    assert report.ok


async def test_crash_embedded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = CrashConfig(
        backend="embedded", kills=3, postgres_kills=2, gap=GAP, writers=1, workdir=tmp_path
    )
    report = await run_crash(config)
    assert report.kills == {"projector": 3, "postgres": 2}
    check(report, capsys)


@pytest.mark.kafka
async def test_crash_kafka(
    kafka_broker: str, database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = CrashConfig(
        backend="kafka",
        kills=3,
        gap=GAP,
        writers=1,
        workdir=tmp_path,
        bootstrap=kafka_broker,
        database_url=database,
        progress_between_kills=False,  # each wait is a session timeout of writing (too long)
    )
    report = await run_crash(config)
    assert report.kills == {"worker": 3}
    check(report, capsys)


async def test_crash_http_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the writer remembers through `spectron serve`, which is killed (projectors and all)
    config = CrashConfig(backend="http", kills=3, gap=GAP, writers=2, workdir=tmp_path)
    report = await run_crash(config)
    assert report.kills == {"server": 3}
    check(report, capsys)


async def test_the_verifier_sees_loss_duplication_and_drift(
    make_client: Callable[..., SpectronClient],
) -> None:
    """A control: the checks above are not vacuous."""
    client = make_client(extractor="none")
    async with client.sessions.create(scope={"org": "crash", "project": "control"}) as s:
        acked = [(await s.remember(f"control note {n}")).id for n in range(3)]
    service = await client.service()
    consumers = [enricher.name for enricher in service.enrichers()]
    never_written = uuid.uuid4()
    result = await verify(service, [*acked, never_written], consumers, bound=30)
    assert (result["acknowledged"], result["projected"], result["lost"]) == (4, 3, 1)
    assert result["missing_from_log"] == 1 and result["duplicated"] == 0
    assert result["live_hash"] == result["rebuilt_hash"]

    # a row projected at the wrong position counts as duplicated, and the hash drifts from replay
    async with service.pool.connection() as conn:
        await conn.execute(
            'UPDATE memories SET "offset" = "offset" + 100 WHERE memory_id = %s', [acked[0]]
        )
    result = await verify(service, acked, consumers, bound=30)
    assert (result["projected"], result["lost"], result["duplicated"]) == (3, 0, 1)
    assert result["live_hash"] != result["rebuilt_hash"]
