"""What a projector is: an async function from one logged event to its effect in Postgres."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncCursor

from spectron.events import LoggedEvent


@dataclass(frozen=True, slots=True)
class ProjectionContext:
    """Facts about the projection being built that projectors need: which model's vectors it indexes."""

    embedding_model: str
    embedding_dim: int | None = None  # vectors of another length cannot be indexed: skipped


Projector = Callable[[AsyncCursor[Any], LoggedEvent, ProjectionContext], Awaitable[None]]
