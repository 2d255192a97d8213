"""Superseded versions of event types, kept for their JSON Schemas (the contract older producers
were written against). Decoding accepts them and upcasts to the current version
(`spectron.events.upcast_memory_embedded_v1_v2`); nothing new is written in them.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from spectron.events import Envelope, StrictModel
from spectron.vectors import MAX_VECTOR_DIMENSIONS


class MemoryEmbeddedPayload(StrictModel):
    """The embedding the enrichment processor computed for a memory, recorded so replay never re-embeds."""

    memory_id: uuid.UUID
    model: str = Field(min_length=1, max_length=200)
    vector: list[float] = Field(min_length=1, max_length=MAX_VECTOR_DIMENSIONS)


class MemoryEmbedded(Envelope):
    """Enrichment output: the vector of one memory under one model."""

    type: Literal["MemoryEmbedded"] = "MemoryEmbedded"
    payload: MemoryEmbeddedPayload


LEGACY_EVENT_TYPES: tuple[type[Envelope], ...] = (MemoryEmbedded,)
