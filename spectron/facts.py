"""Structured facts (entities, attributes, relations) and the entity type system that guides extraction."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from spectron.errors import InvalidFacts

Cardinality = Literal["single", "multi"]
_TYPE_NAME = r"^[A-Z][A-Za-z0-9]{0,63}$"
_KEY = r"^[a-z][a-z0-9_]{0,63}$"


def _clean(text: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ValueError("must not be blank")
    if "\x00" in cleaned:
        raise ValueError("must not contain NUL")
    return cleaned


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean)]
Value = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_clean)]
TypeName = Annotated[str, Field(pattern=_TYPE_NAME)]
Key = Annotated[str, Field(pattern=_KEY)]


class _Fact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityRef(_Fact):
    """An entity by type and name, e.g. CustomerSegment/enterprise."""

    type: TypeName
    name: Name


class AttributeFact(_Fact):
    """entity.key = value. Single-valued attributes supersede; multi-valued ones accumulate."""

    entity: EntityRef
    key: Key
    value: Value
    cardinality: Cardinality = "single"


class RelationFact(_Fact):
    """subject → predicate → object."""

    subject: EntityRef
    predicate: Key
    object: EntityRef


class Facts(_Fact):
    """What one memory says, structurally."""

    entities: list[EntityRef] = Field(default_factory=list, max_length=100)
    attributes: list[AttributeFact] = Field(default_factory=list, max_length=200)
    relations: list[RelationFact] = Field(default_factory=list, max_length=200)

    def is_empty(self) -> bool:
        """True when nothing was extracted."""
        return not (self.entities or self.attributes or self.relations)


class AttributeSpec(_Fact):
    """One attribute of an entity type: its key, the phrases that name it, and its cardinality."""

    key: Key
    synonyms: list[Name] = Field(default_factory=list, max_length=50)
    cardinality: Cardinality = "single"


class EntityType(_Fact):
    """A registered entity type: name, trigger phrases that mark a mention, and its attributes."""

    name: TypeName
    triggers: list[Name] = Field(default_factory=list, max_length=50)
    attributes: list[AttributeSpec] = Field(default_factory=list, max_length=100)


def name_key(name: str) -> str:
    """Entity names match case-insensitively and ignoring repeated spaces."""
    return " ".join(name.lower().split())


def slug(text: str) -> str:
    """snake_case key from free text ("Pro tier" → "pro_tier")."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:64] or "value"


def check_facts(facts: Any) -> Facts | None:
    """Caller-given facts as Facts: a Facts, its dict form, or a list of entity/attribute/relation items.

    Raises InvalidFacts (an InvalidInput) saying what is wrong; None means "extract them for me".
    """
    if facts is None or isinstance(facts, Facts):
        return facts
    try:
        if isinstance(facts, dict):
            return Facts.model_validate(facts)
        if not isinstance(facts, list | tuple):
            raise InvalidFacts(f"facts must be a list or a dict, got {type(facts).__name__}")
        sorted_facts: dict[str, list[Any]] = {"entities": [], "attributes": [], "relations": []}
        for item in facts:
            if isinstance(item, BaseModel):
                item = item.model_dump()
            if not isinstance(item, dict):
                raise InvalidFacts(f"each fact must be a dict, got {type(item).__name__}")
            if "predicate" in item:
                sorted_facts["relations"].append(item)
            elif "key" in item:
                sorted_facts["attributes"].append(item)
            else:
                sorted_facts["entities"].append(item)
        return Facts.model_validate(sorted_facts)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidFacts(f"facts {where}: {first['msg']}") from exc
