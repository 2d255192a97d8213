"""A bounded LRU of query vectors, so a repeated recall query is not embedded again."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from spectron.embedding import Vectors

QUERY_CACHE_SIZE = 1024  # 1,024 vectors of 384 float32 are 1.5 MiB


class QueryVectorCache:
    """Query vectors by (embedder model id, query text), least recently used evicted first.

    The model id is part of the key so that vectors of one model are never served for another.
    Used from the event loop only, hence no lock.
    """

    def __init__(self, maxsize: int = QUERY_CACHE_SIZE) -> None:
        self.maxsize = maxsize
        self._vectors: OrderedDict[tuple[str, str], Vectors] = OrderedDict()

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, model_id: str, text: str) -> Vectors | None:
        """The cached vector, marked most recently used; None when absent."""
        vector = self._vectors.get((model_id, text))
        if vector is not None:
            self._vectors.move_to_end((model_id, text))
        return vector

    def put(self, model_id: str, text: str, vector: Vectors) -> Vectors:
        """Remember a read-only copy (callers share it), evicting the oldest past maxsize."""
        vector = np.array(vector, dtype=np.float32)  # a copy: the embedder may reuse its buffer
        vector.setflags(write=False)
        self._vectors[(model_id, text)] = vector
        self._vectors.move_to_end((model_id, text))
        while len(self._vectors) > self.maxsize:
            self._vectors.popitem(last=False)
        return vector
