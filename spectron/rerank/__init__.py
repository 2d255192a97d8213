"""The Reranker port: scores (query, passage) pairs; recall reorders its best hits by them (opt-in)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from spectron.config import Settings


class Reranker(Protocol):
    """Scores how well each document answers a query, higher is better."""

    @property
    def model_id(self) -> str:
        """Identifies the model behind the scores."""
        ...

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, in the documents' order."""
        ...


def make_reranker(name: str | None = None, settings: Settings | None = None) -> Reranker | None:
    """The reranker named by `name` or `settings.reranker`: none (default) or http."""
    settings = settings or Settings()
    name = (name or settings.reranker).lower()
    if name == "none":
        return None
    if name == "http":
        from spectron.rerank.http import HttpReranker

        return HttpReranker.from_settings(settings)
    raise ValueError(f"unknown reranker {name!r}: choose none or http")
