"""How much of a partition's records one live projection transaction applies.

A memory becomes visible to recall when the transaction that projects it commits. Projecting a
vector costs far more than projecting a memory (the HNSW insert: ~2-10 ms each on 2 cores, against
well under 1 ms for a row), so a batch holding many vectors kept every memory in it invisible
until all of them were inserted: at 100k memories, 1.5-2 s. Ending a live batch after a few
vectors bounds that wait; replay, which nobody reads meanwhile, keeps its big transactions.
"""

from __future__ import annotations

from collections.abc import Sequence

from projectors.enrichment_input import record_type
from spectron.log import RawRecord

# vectors per live transaction: ~16 HNSW inserts keep a commit within ~50-150 ms on 2 cores
MAX_VECTORS = 16


def live_batch(records: Sequence[RawRecord], max_vectors: int = MAX_VECTORS) -> Sequence[RawRecord]:
    """The leading records holding at most `max_vectors` vectors (at least one record)."""
    vectors = 0
    for index, record in enumerate(records):
        if record_type(record) == "MemoryEmbedded":
            if vectors == max_vectors:
                return records[: max(index, 1)]
            vectors += 1
    return records
