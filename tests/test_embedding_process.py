"""The embedding model in child processes: same vectors as in-process, and a dead child is replaced."""

from __future__ import annotations

import numpy as np

from spectron.embedding.hashing import HashingEmbedder
from spectron.embedding.process import ProcessEmbedder

TEXTS = ["the blue heron nests by the river", "pricing moved 20% in Q2"]


def test_vectors_equal_the_in_process_model_and_a_killed_child_is_replaced() -> None:
    here = HashingEmbedder()
    there = ProcessEmbedder("hashing")
    try:
        assert (there.model_id, there.dim) == (here.model_id, here.dim)
        assert np.array_equal(there.embed_passages(TEXTS), here.embed_passages(TEXTS))
        assert np.array_equal(there.embed_query("heron"), here.embed_query("heron"))
        child = there._passages._child
        assert child is not None
        child.kill()
        child.wait()
        assert np.array_equal(there.embed_passages(TEXTS), here.embed_passages(TEXTS))
        assert there._passages._child is not child
    finally:
        there.close()
    assert there._passages._child is None
    assert child.poll() is not None
