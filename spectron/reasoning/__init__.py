"""The Reasoner port: a query plus the memories and entity state a scope can see, in; a reflection out.

Adapters: `extractive` (offline, deterministic; the default) and `llm` (any OpenAI-compatible chat
endpoint). A persisted reflection records the reasoner's output in the log, so replay never asks a
reasoner again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from spectron.config import Settings
from spectron.models import MemoryItem, State
from spectron.scope import Scope


@dataclass(frozen=True)
class ReflectionInput:
    """Everything a reasoner may use: all of it visible from `scope`."""

    query: str
    scope: Scope
    memories: list[MemoryItem]
    state: State


@dataclass(frozen=True)
class Draft:
    """A reasoner's answer before it is returned or persisted."""

    summary: str
    sources: list[uuid.UUID] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)


class Reasoner(Protocol):
    """Synthesises a reflection; synchronous, callers run it in a worker thread."""

    @property
    def reasoner_id(self) -> str:
        """Identifies reasoner and version; recorded with persisted reflections."""
        ...

    def reflect(self, data: ReflectionInput) -> Draft:
        """A summary citing only ids from `data`, and what is uncertain."""
        ...


def make_reasoner(name: str | None = None, settings: Settings | None = None) -> Reasoner:
    """The reasoner named by `name` or `settings.reasoner`: extractive (default) or llm."""
    settings = settings or Settings()
    name = (name or settings.reasoner).lower()
    if name == "extractive":
        from spectron.reasoning.extractive import ExtractiveReasoner

        return ExtractiveReasoner()
    if name == "llm":
        from spectron.reasoning.llm import LLMReasoner

        return LLMReasoner.from_settings(settings)
    raise ValueError(f"unknown reasoner {name!r}: choose extractive or llm")
