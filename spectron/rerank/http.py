"""Reranker over the common `/rerank` HTTP API: Cohere and Jina shape, or Hugging Face TEI's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import orjson

from spectron.config import Settings
from spectron.errors import RerankerUnavailable
from spectron.llm import LLMError, post_json

RerankApi = Literal["cohere", "tei"]


class HttpReranker:
    """POST {base_url}/rerank.

    "cohere" (also Jina, vLLM, Infinity): {"model", "query", "documents"} answered by
    {"results": [{"index", "relevance_score"}]}. "tei" (text-embeddings-inference): {"query",
    "texts"} answered by [{"index", "score"}].
    """

    def __init__(
        self,
        base_url: str,
        model: str = "",
        api_key: str | None = None,
        api: RerankApi = "cohere",
        timeout: float = 10.0,
    ) -> None:
        self._url = base_url.rstrip("/") + "/rerank"
        self._model = model
        self._key = api_key
        self._api = api
        self._timeout = timeout
        self.model_id = f"rerank:{model or api}"

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpReranker:
        """Configure from settings.reranker_url, _model, _key, _api (cohere or tei), _timeout."""
        api = settings.reranker_api
        if api not in ("cohere", "tei"):
            raise ValueError(f"SPECTRON_RERANKER_API must be cohere or tei, not {api!r}")
        return cls(
            base_url=settings.reranker_url,
            model=settings.reranker_model,
            api_key=settings.reranker_key,
            api=api,  # type: ignore[arg-type]
            timeout=settings.reranker_timeout,
        )

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """One score per document, from the endpoint."""
        if not documents:
            return []
        if self._api == "tei":
            body: dict[str, Any] = {"query": query, "texts": list(documents)}
        else:
            body = {"query": query, "documents": list(documents)}
            if self._model:
                body["model"] = self._model
        try:
            answer = post_json(self._url, orjson.dumps(body), self._key, self._timeout)
        except LLMError as exc:
            raise RerankerUnavailable(str(exc)) from exc
        return scores(self._url, answer, len(documents))


def scores(url: str, answer: Any, count: int) -> list[float]:
    """Scores by document index from either answer shape; every document must have one."""
    rows: Any = answer.get("results") if isinstance(answer, dict) else answer
    found: dict[int, float] = {}
    try:
        for row in rows:
            value = row["relevance_score"] if "relevance_score" in row else row["score"]
            found[int(row["index"])] = float(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise RerankerUnavailable(f"{url}: not a rerank answer: {str(answer)[:200]}") from exc
    if sorted(found) != list(range(count)):
        raise RerankerUnavailable(f"{url}: scored {len(found)} of {count} documents")
    return [found[index] for index in range(count)]
