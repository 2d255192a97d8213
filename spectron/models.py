"""Results returned to callers (the API's edge): plain pydantic models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class RememberResult(_Result):
    """Acknowledgement of a remember: the memory id and where the log put it."""

    id: uuid.UUID
    partition: int
    offset: int
    recorded_at: datetime


class MemoryItem(_Result):
    """One recalled memory."""

    id: uuid.UUID
    content: str
    memory_category: str
    metadata: dict[str, Any]
    scope: dict[str, str]
    score: float = Field(
        description="Fused rank score (reciprocal rank fusion of dense + keyword)."
    )
    principal: str
    recorded_at: datetime
    embedded: bool = Field(
        description="False when matched by keyword before its vector was projected."
    )


class RecallResult(_Result):
    """What recall returns: the items, a prompt-ready text block, and how fresh the answer is."""

    items: list[MemoryItem]
    formatted: str
    pending: int = Field(
        0, description="Memories appended before the recall whose vectors were not projected yet."
    )
    waited_ms: float = 0.0
