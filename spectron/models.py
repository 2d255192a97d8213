"""Results returned to callers (the API's edge): plain pydantic models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spectron.prompt_text import inline, json_text, quoted, scope_label


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
    scope: dict[str, str] = Field(
        description="The scope the value was asserted at: supersession chains run per scope."
    )
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


class Disagreement(_Result):
    """Scopes whose current values of one single-valued attribute differ."""

    key: str
    values: list[Attribute] = Field(description="The current value at each disagreeing scope.")


class Entity(_Result):
    """An entity as seen from the query's scope: one entry however many scopes named it.

    Each attribute and relation carries the scope and writer it came from; values supersede one
    another within a scope, and `disagreements` lists keys whose current values differ by scope.
    """

    type: str
    name: str
    scope: dict[str, str] = Field(description="The first of `scopes`.")
    scopes: list[dict[str, str]] = Field(description="Every visible scope that names the entity.")
    attributes: list[Attribute] = Field(description="By key, then in log order across scopes.")
    relations: list[Relation]
    disagreements: list[Disagreement] = Field(default_factory=list)

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
        """Current state as compact text for a prompt: each value with its scope and writers,
        repeats folded into one line, superseded values and disagreeing scopes spelled out."""
        lines = []
        for entity in self.entities:
            lines.append(f"{inline(entity.type)}/{inline(entity.name)}:")
            lines.extend(_attribute_lines(entity.attributes, self.scope))
            lines.extend(_relation_lines(entity.relations, self.scope))
            for disagreement in entity.disagreements:
                held = " vs ".join(
                    f"{inline(attr.value)} at {scope_label(attr.scope)} by {attr.principal}"
                    for attr in disagreement.values
                )
                lines.append(f"  ! scopes disagree on {inline(disagreement.key)}: {held}")
        return "\n".join(lines) if lines else "No entities known at this scope."


def _source(sources: list[Attribute] | list[Relation], query_scope: dict[str, str]) -> str:
    """ " (at SCOPE; by WRITERS; N sources)" for statements of one scope, the scope left out where
    it is the query's own."""
    where = "" if sources[0].scope == query_scope else f"at {scope_label(sources[0].scope)}; "
    count = f"; {len(sources)} sources" if len(sources) > 1 else ""
    return f" ({where}by {', '.join(dict.fromkeys(s.principal for s in sources))}{count})"


def _attribute_lines(attributes: list[Attribute], query_scope: dict[str, str]) -> list[str]:
    """One line per distinct (key, value, scope, successor); repeats count as more sources."""
    folded: dict[tuple[str, str, str, str | None], list[Attribute]] = {}
    for attr in attributes:
        successor = attr.superseded_by.value if attr.superseded_by else None
        folded.setdefault((attr.key, attr.value, scope_label(attr.scope), successor), []).append(
            attr
        )
    lines = []
    for (key, value, _, successor), same in folded.items():
        note = f" (superseded by {inline(successor)})" if successor is not None else ""
        lines.append(f"  {inline(key)}: {inline(value)}{note}{_source(same, query_scope)}")
    return lines


def _relation_lines(relations: list[Relation], query_scope: dict[str, str]) -> list[str]:
    """One line per distinct (predicate, object, scope); repeats count as more sources."""
    folded: dict[tuple[str, str, str, str], list[Relation]] = {}
    for rel in relations:
        key = (rel.predicate, rel.object_type, rel.object, scope_label(rel.scope))
        folded.setdefault(key, []).append(rel)
    return [
        f"  → {inline(predicate)} → {inline(otype)}/{inline(obj)}{_source(same, query_scope)}"
        for (predicate, otype, obj, _), same in folded.items()
    ]


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
                lines.append(f"- {when} {json_text(reflection.query)} by {reflection.principal}:")
                lines.extend(quoted(reflection.summary))
        if self.recent:
            lines.append("Recent memories:")
            for memory in self.recent:
                lines.append(
                    f"- {memory.memory_category}; scope {scope_label(memory.scope)};"
                    f" by {memory.principal}"
                )
                lines.extend(quoted(memory.content))
        return "\n".join(lines)
