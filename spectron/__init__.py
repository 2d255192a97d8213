"""Spectron: shared long-term memory for teams of LLM agents, on an event-sourced log."""

from typing import TYPE_CHECKING, Any

from spectron.errors import (
    ContentForgotten,
    InvalidCategory,
    InvalidContent,
    InvalidInput,
    InvalidMetadata,
    InvalidScope,
    MemoryNotFound,
    ReadYourWritesTimeout,
    SessionClosed,
    SpectronError,
)
from spectron.events import LogPosition
from spectron.models import MemoryItem, RecallResult, RememberResult
from spectron.validation import MEMORY_CATEGORIES

if TYPE_CHECKING:
    from spectron.client import Session, SpectronClient

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # the client pulls in the projectors, which import spectron's core: load it on first use so
    # `import projectors...` before `import spectron` has no cycle
    if name in ("SpectronClient", "Session"):
        from spectron import client

        return getattr(client, name)
    raise AttributeError(f"module 'spectron' has no attribute {name!r}")


__all__ = [
    "MEMORY_CATEGORIES",
    "ContentForgotten",
    "InvalidCategory",
    "InvalidContent",
    "InvalidInput",
    "InvalidMetadata",
    "InvalidScope",
    "LogPosition",
    "MemoryItem",
    "MemoryNotFound",
    "ReadYourWritesTimeout",
    "RecallResult",
    "RememberResult",
    "Session",
    "SessionClosed",
    "SpectronClient",
    "SpectronError",
]
