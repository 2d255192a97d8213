"""A deterministic hashing embedder: fast, offline, lexical. For tests and scale benchmarks."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from spectron.embedding import Vectors

_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Signed feature hashing of word unigrams and bigrams, L2-normalised."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.model_id = f"hashing-{dim}@1"

    def _vector(self, text: str) -> Vectors:
        vec = np.zeros(self.dim, dtype=np.float32)
        words = _TOKEN.findall(text.lower())
        for feature in words + [f"{a} {b}" for a, b in pairwise(words)]:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vec[value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0  # a text with no words still gets a valid unit vector
            return vec
        return vec / norm

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """One hashed vector per text."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(text) for text in texts])

    def embed_query(self, text: str) -> Vectors:
        """Queries hash exactly like passages."""
        return self._vector(text)
