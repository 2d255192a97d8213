"""What a projector is, and the list of projectors every driver applies, in order."""

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


Projector = Callable[[AsyncCursor[Any], LoggedEvent, ProjectionContext], Awaitable[None]]


def _registry() -> tuple[Projector, ...]:
    from projectors.entities import project_entities
    from projectors.recall import project_recall

    return (project_recall, project_entities)


PROJECTORS: tuple[Projector, ...] = _registry()
