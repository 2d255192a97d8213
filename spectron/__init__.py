"""Spectron: shared long-term memory for teams of LLM agents, on an event-sourced log."""

from spectron.client import Session, SpectronClient
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

__version__ = "0.1.0"

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
