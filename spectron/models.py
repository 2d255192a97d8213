"""Results returned to callers (the API's edge): plain pydantic models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class RememberResult(_Result):
    """Acknowledgement of a remember: the memory id and where the log put it."""

    id: uuid.UUID
    partition: int
    offset: int
    recorded_at: datetime


Leg = Literal["dense", "keyword", "neighbour"]


class RecallExplanation(_Result):
    """Why a memory came back: the rank each leg gave it and what hits beside it lent it."""

    legs: list[Leg] = Field(description="The legs that found it.")
    dense_rank: int | None = Field(
        description="1-based rank in the dense (vector) leg; null when that leg did not find it."
    )
    keyword_rank: int | None = Field(
        description="1-based rank in the keyword (BM25) leg; null when that leg did not find it."
    )
    fused_score: float = Field(description="Its own weighted reciprocal-rank-fusion score.")
    neighbour_score: float = Field(
        description="Score lent by hits written just before or after it in the same scope."
    )
    lent_by: list[uuid.UUID] = Field(description="The hits that lent it score, best first.")
    rerank_score: float | None = Field(
        None, description="The reranker's relevance score; null when no reranker ran."
    )


class MemoryItem(_Result):
    """One recalled memory."""

    id: uuid.UUID
    content: str
    memory_category: str
    metadata: dict[str, Any]
    scope: dict[str, str]
    score: float = Field(
        description=(
            "Fused score: weighted reciprocal rank fusion of the dense and keyword legs, plus"
            " what hits written beside it lent it."
        )
    )
    principal: str
    recorded_at: datetime
    embedded: bool = Field(
        description="False when matched by keyword before its vector was projected."
    )
    explanation: RecallExplanation | None = Field(
        None, description="Why it came back; only when recall was asked to explain."
    )


class RecallResult(_Result):
    """What recall returns: the items, a prompt-ready text block, and how fresh the answer is."""

    items: list[MemoryItem]
    formatted: str
    pending: int = Field(
        0, description="Memories appended before the recall whose vectors were not projected yet."
    )
    waited_ms: float = 0.0


class AttributeRef(_Result):
    """The value that superseded another, with where it came from."""

    value: str
    memory_id: uuid.UUID
    principal: str
    recorded_at: datetime


class Attribute(_Result):
    """One asserted value of an entity attribute; `superseded_by` is set once a later value replaced it."""

    key: str
    value: str
    cardinality: str
    memory_id: uuid.UUID
    principal: str
    recorded_at: datetime
    extractor: str
    superseded_by: AttributeRef | None = None

    @property
    def current(self) -> bool:
        """True while no later, different value superseded this one."""
        return self.superseded_by is None


class Relation(_Result):
    """subject → predicate → object, as asserted by one memory."""

    subject_type: str
    subject: str
    predicate: str
    object_type: str
    object: str
    scope: dict[str, str]
    memory_id: uuid.UUID
    principal: str
    recorded_at: datetime


class Entity(_Result):
    """An entity at one scope, with every value asserted for it (current and superseded)."""

    type: str
    name: str
    scope: dict[str, str]
    attributes: list[Attribute]
    relations: list[Relation]

    @property
    def current(self) -> dict[str, str | list[str]]:
        """Current values by key: the latest single value, or every multi value."""
        out: dict[str, str | list[str]] = {}
        for attr in self.attributes:
            if attr.cardinality == "multi":
                values = out.setdefault(attr.key, [])
                if isinstance(values, list) and attr.value not in values:
                    values.append(attr.value)
            elif attr.current:
                out[attr.key] = attr.value
        return out


class State(_Result):
    """Entities, attributes and relations visible from a scope."""

    scope: dict[str, str]
    entities: list[Entity]
    relations: list[Relation]
    pending: int = Field(
        0, description="Memories appended before the call whose facts were not projected yet."
    )

    def entity(self, type: str, name: str) -> Entity | None:
        """The first visible entity of that type and name (case-insensitive), if any."""
        for entity in self.entities:
            if entity.type == type and entity.name.lower() == name.lower():
                return entity
        return None

    @property
    def formatted(self) -> str:
        """Current state as compact text for a prompt, with superseded values noted."""
        lines = []
        for entity in self.entities:
            lines.append(f"{entity.type}/{entity.name}:")
            for attr in entity.attributes:
                if attr.superseded_by is not None:
                    lines.append(
                        f"  {attr.key}: {attr.value} (superseded by {attr.superseded_by.value})"
                    )
                else:
                    lines.append(f"  {attr.key}: {attr.value}")
            for rel in entity.relations:
                lines.append(f"  → {rel.predicate} → {rel.object_type}/{rel.object}")
        return "\n".join(lines) if lines else "No entities known at this scope."


class Reflection(_Result):
    """What reflect returns: a synthesis, the memories it used, and what remains uncertain."""

    query: str
    summary: str
    sources: list[uuid.UUID]
    uncertain: list[str]
    reasoner: str
    scope: dict[str, str]
    persisted: bool = False
    id: uuid.UUID | None = Field(None, description="Memory id of the persisted reflection.")
    recorded_at: datetime | None = None


class ProfileReflection(_Result):
    """A persisted reflection as the profile lists it."""

    id: uuid.UUID
    query: str
    summary: str
    sources: list[uuid.UUID]
    uncertain: list[str]
    reasoner: str
    scope: dict[str, str]
    principal: str
    recorded_at: datetime


class Profile(_Result):
    """A scope at a glance: entity state, persisted reflections, who contributed what, recent memory."""

    scope: dict[str, str]
    state: State
    reflections: list[ProfileReflection] = Field(description="Newest first.")
    counts_by_category: dict[str, int]
    counts_by_scope: dict[str, int] = Field(description="Memories per contributing scope.")
    counts_by_principal: dict[str, int]
    recent: list[MemoryItem] = Field(description="Newest memories first.")
    pending: int = 0

    @property
    def entities(self) -> list[Entity]:
        """Entities visible from the scope."""
        return self.state.entities

    @property
    def formatted(self) -> str:
        """The profile as compact text for a prompt."""
        where = ", ".join(f"{k}={v}" for k, v in self.scope.items())
        total = sum(self.counts_by_category.values())
        lines = [f"Profile of scope {where}: {total} memories."]
        if self.counts_by_scope:
            lines.append("Contributions by scope:")
            lines.extend(f"- {scope}: {n}" for scope, n in self.counts_by_scope.items())
        if self.counts_by_principal:
            lines.append(
                "By writer: " + ", ".join(f"{p} {n}" for p, n in self.counts_by_principal.items())
            )
        lines.append("Current state:")
        lines.extend("  " + line for line in self.state.formatted.splitlines())
        if self.reflections:
            lines.append("Reflections (newest first):")
            for reflection in self.reflections:
                when = reflection.recorded_at.strftime("%Y-%m-%d %H:%M")
                lines.append(f'- {when} "{reflection.query}":')
                lines.extend("    " + line for line in reflection.summary.splitlines())
        if self.recent:
            lines.append("Recent memories:")
            lines.extend(f"- [{m.memory_category}] {m.content}" for m in self.recent)
        return "\n".join(lines)
