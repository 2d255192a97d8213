"""The benchmarks in tiny mode (200 memories, a few LoCoMo turns), so they cannot rot. No timing asserts."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

# benchmarks/ sits beside the installed packages, not inside them: import it from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.locomo import ABLATIONS, DEFAULT_PATH, normalize_evidence
from benchmarks.report import (
    ablation_rows,
    locomo_rows,
    markdown_table,
    render,
    speed_rows,
    split_rows,
)
from benchmarks.run import Options, parse, run_all, write_results


def _dist_ok(dist: dict[str, Any]) -> None:
    assert dist["n"] > 0
    assert 0 <= dist["p50_ms"] <= dist["p95_ms"] <= dist["p99_ms"] <= dist["max_ms"]


def test_evidence_normalisation() -> None:
    known = {"D8:6", "D9:17", "D11:26", "D30:5"}
    found, dropped = normalize_evidence(["D8:6; D9:17", "D:11:26", "D30:05", "D", "D99:1"], known)
    assert found == known and dropped == 2


def test_command_line() -> None:
    options, _ = parse(["--sizes", "10000,100_000", "--kafka", "--speed-only"])
    assert options.sizes == (10_000, 100_000) and options.kafka and not options.locomo
    quick, _ = parse(["--quick", "--locomo-only"])
    assert quick.sizes == (2_000,) and not quick.speed


@pytest.mark.timeout(120)
async def test_tiny_run_writes_tables_and_json(tmp_path: Path) -> None:
    results = await run_all(Options(tiny=True, output=tmp_path))
    path = write_results(results, tmp_path)
    assert json.loads(path.read_text()) == json.loads((tmp_path / "latest.json").read_text())

    assert results["machine"]["logical_cores"] >= 1 and results["machine"]["cpu_model"]
    assert results["versions"]["postgres"].startswith("PostgreSQL")
    assert results["versions"]["pgvector"]

    run = results["speed"]["embedded"]
    assert run["embedder"].startswith("hashing") and run["scopes"] >= 7
    figures = run["sizes"]["200"]
    assert 150 <= figures["memories"] <= 260
    for dist in (
        figures["remember"],
        figures["bulk_load"]["remember_latency_under_load"],
        figures["lag"]["keyword_visible"],
        figures["lag"]["dense_visible"],
        figures["read_your_writes"]["recall_waited"],
        figures["recall"]["leaf_hybrid"],
        figures["recall"]["org_hybrid"],
        figures["recall"]["org_hybrid_sql_only"],
        figures["get_state"],
        figures["profile"]["org"],
    ):
        _dist_ok(dist)
    assert figures["bulk_load"]["appends_per_second"] > 0
    assert figures["enrichment"]["drain_per_second"] > 0
    assert figures["enrichment"]["raw_model"]["per_second"] > 0
    assert figures["read_your_writes"]["found"] == figures["read_your_writes"]["ops"]
    assert figures["get_state"]["entities"] == 20
    assert figures["replay"]["events"] > figures["memories"] and figures["replay"]["hash_equal"]
    assert figures["footprint"]["db_size_mib"] > 0
    assert figures["footprint"]["db_mib_per_1000_memories"] > 0
    assert "leaf" in figures["explain"] and "org" in figures["explain"]
    assert figures["http"]["status"]
    assert "recall_leaf_hybrid_p95_ms" in results["cost_curve"]["embedded"]

    header, rows = speed_rows(results)
    assert header[2] == "embedded 200" and len(rows) > 20
    assert all(len(row) == len(header) for row in rows)

    loc = results["locomo"]
    if not DEFAULT_PATH.exists():
        assert "skipped" in loc
        return
    assert loc["conversations"] == 1 and loc["turns"] == 60 and loc["questions"] > 0
    assert loc["ingest"]["missing_vectors"] == 0
    expected = {"spectron_hybrid", "spectron_dense", "spectron_keyword", *ABLATIONS}
    assert expected <= set(loc["recall"])
    assert set(loc["recall@10_by_split"]["spectron_hybrid"]) == {"conversations 0-4"}
    assert sum(loc["hybrid_top10_legs"].values()) > 0
    try:
        import bm25s  # type: ignore[import-untyped]  # noqa: F401

        expected.add("bm25")
    except ImportError:
        assert "bm25_missing" in loc
    for system in expected:
        scores = loc["recall"][system]
        assert 0 <= scores["recall@5"] <= scores["recall@10"] <= scores["recall@20"] <= 1
    assert loc["recall"]["spectron_hybrid"]["recall@20"] > 0
    header, rows = locomo_rows(results)
    assert {row[0] for row in rows} == expected - set(ABLATIONS)
    assert markdown_table(header, rows).count("\n") == len(rows) + 1
    header, rows = ablation_rows(results)
    assert [row[0] for row in rows][:3] == ["spectron_hybrid", "spectron_dense", "spectron_keyword"]
    assert {row[0] for row in rows} == expected - {"bm25"}
    assert all(len(row) == len(header) for row in rows)
    header, rows = split_rows(results)
    assert header[1:] == ["@10 conversations 0-4", "@10 all"]
    assert {row[0] for row in rows} == expected
    render(results, Console(file=io.StringIO()))
    render(results, Console(file=io.StringIO()), markdown=True)


async def test_appends_benchmark_runs() -> None:
    """The appends benchmark's measurement, at a size that takes a second."""
    from benchmarks.appends import measure

    row = await measure(agents=2, per_agent=5, projectors=False)
    assert row["n"] == 10 and row["per_second"] > 0 and row["p99_ms"] >= row["p50_ms"]


async def test_replay_benchmark_runs(tmp_path: Path) -> None:
    """The replay benchmark builds a small log of every event type and replays it hash-equal."""
    from benchmarks.replay import build_log, measure

    await build_log(tmp_path / "home", 60)
    rows = await measure(tmp_path / "home", rebuild=True)
    assert [row["what"] for row in rows] == ["replay --verify", "rebuild"]
    assert all(row["equal"] and row["events"] > 60 for row in rows), rows
