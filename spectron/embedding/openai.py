"""Embedder over any OpenAI-compatible `/v1/embeddings` endpoint (e.g. a local embedding server)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np
import orjson

from spectron.config import Settings
from spectron.embedding import Vectors
from spectron.errors import EmbedderUnavailable


class OpenAIEmbedder:
    """Calls POST {base_url}/embeddings; the dimension is learnt from the first answer if not given."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dim: int | None = None,
        timeout: float = 30.0,
        query_prefix: str = "",
        passage_prefix: str = "",
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._key = api_key
        self._timeout = timeout
        self._query_prefix = query_prefix
        self._passage_prefix = passage_prefix
        self.model_id = f"openai:{model}"
        self._dim = dim

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        """Configure from settings.embedder_url, _model, _key and _dim (SPECTRON_EMBEDDER_*)."""
        return cls(
            base_url=settings.embedder_url,
            model=settings.embedder_model,
            api_key=settings.embedder_key,
            dim=settings.embedder_dim,
        )

    @property
    def dim(self) -> int:
        """Vector dimension (asks the endpoint once when not configured)."""
        if self._dim is None:
            self._dim = int(self._call(["dimension probe"]).shape[1])
        return self._dim

    def _call(self, texts: list[str]) -> Vectors:
        body = orjson.dumps({"model": self._model, "input": texts})
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = orjson.loads(response.read())
            rows = sorted(answer["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (OSError, urllib.error.URLError, KeyError, TypeError, ValueError) as exc:
            raise EmbedderUnavailable(f"embedding endpoint {self._url}: {exc}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise EmbedderUnavailable(f"embedding endpoint {self._url} answered a wrong shape")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """Passage vectors from the endpoint."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._call([self._passage_prefix + text for text in texts])

    def embed_query(self, text: str) -> Vectors:
        """Query vector from the endpoint."""
        vector: Vectors = self._call([self._query_prefix + text])[0]
        return vector
