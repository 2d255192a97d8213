"""The disk benchmark on a small store, so it cannot rot; and a guard that vectors stay packed."""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/ sits beside the installed packages, not inside them: import it from the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.disk import measure, render, summary


async def test_disk_breakdown_beside_the_floor(database: str) -> None:
    result = await measure(120, database=database)
    render(result)
    events = {row["type"]: row for row in result.event_types}
    assert events["MemoryRecorded"]["events"] == events["MemoryEmbedded"]["events"] == 120
    # a 384-d vector is 768 bytes of float16 plus its sealed envelope (it was ~3.2 KB as JSON)
    vector = events["MemoryEmbedded"]
    assert 768 < vector["stored_value_bytes"] / vector["events"] < 1_200
    parts = summary(result)
    assert parts["floor tables"] > 0 and parts["floor indexes"] > 0
    assert parts["log tables"] > 0 and parts["projection indexes"] > 0
    assert parts["WAL"] > 0 and parts["floor WAL"] > 0
    assert parts["total"] > parts["floor"]
