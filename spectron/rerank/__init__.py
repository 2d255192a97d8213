"""The Reranker port: scores (query, passage) pairs; recall reorders its best hits by them (opt-in)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol


class Reranker(Protocol):
    """Scores how well each document answers a query, higher is better."""

    @property
    def model_id(self) -> str:
        """Identifies the model behind the scores."""
        ...

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, in the documents' order."""
        ...


def make_reranker(name: str | None = None) -> Reranker | None:
    """The reranker named by `name` or SPECTRON_RERANKER: none (default) or http."""
    name = (name or os.environ.get("SPECTRON_RERANKER") or "none").lower()
    if name == "none":
        return None
    if name == "http":
        from spectron.rerank.http import HttpReranker

        return HttpReranker.from_env()
    raise ValueError(f"unknown reranker {name!r}: choose none or http")
