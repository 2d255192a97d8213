"""The Extractor port: memory text to structured Facts, guided by the registered entity types.

Adapters: `patterns` (offline, deterministic; the default) and `llm` (any OpenAI-compatible chat
endpoint). Extraction runs once per memory and its output is recorded in the log as an event, so
replay never calls an extractor again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from spectron.config import Settings
from spectron.facts import EntityType, Facts

__all__ = ["Extractor", "make_extractor"]


class Extractor(Protocol):
    """Turns memory content into Facts; synchronous, callers run it in a worker thread."""

    @property
    def extractor_id(self) -> str:
        """Identifies extractor and version, e.g. "patterns@1"; recorded with the facts."""
        ...

    def extract(self, content: str, types: Sequence[EntityType]) -> Facts:
        """Facts stated in `content`; raises ExtractionFailed, never anything else on purpose."""
        ...


def make_extractor(name: str | None = None, settings: Settings | None = None) -> Extractor:
    """The extractor named by `name` or `settings.extractor`: patterns (default) or llm."""
    settings = settings or Settings()
    name = (name or settings.extractor).lower()
    if name == "patterns":
        from spectron.extraction.patterns import PatternExtractor

        return PatternExtractor()
    if name == "llm":
        from spectron.extraction.llm import LLMExtractor

        model = settings.llm_model
        if not model:
            # the model id is recorded with every fact, so it must be named, not guessed
            raise ValueError("the llm extractor needs SPECTRON_LLM_MODEL (and SPECTRON_LLM_URL)")
        return LLMExtractor(base_url=settings.llm_url, model=model, api_key=settings.llm_key)
    raise ValueError(f"unknown extractor {name!r}: choose patterns or llm")
