"""The offline reasoner: an extractive synthesis that groups, de-duplicates, lists and flags.

Deterministic: the same memories and state (hence the same log) give the same text, byte for byte.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable

from spectron.models import Attribute, Entity, MemoryItem
from spectron.reasoning import Draft, ReflectionInput

_WORD = re.compile(r"[a-z0-9$%.]+")
NEAR_DUPLICATE = 0.8  # Jaccard similarity of word sets above which two memories say the same
GENERAL = "General"


def _words(text: str) -> set[str]:
    return {w.strip(".") for w in _WORD.findall(text.lower())} - {""}


def _short(memory_id: uuid.UUID) -> str:
    return str(memory_id)[:8]


def _where(scope: dict[str, str]) -> str:
    return "/".join(f"{k}={v}" for k, v in scope.items())


def _gist(content: str, limit: int = 240) -> str:
    """A memory on one line, cut at `limit` characters (a stored reflection can be long)."""
    flat = " ".join(content.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def deduplicate(memories: list[MemoryItem]) -> list[MemoryItem]:
    """Drop memories whose words nearly repeat a better-ranked one."""
    kept: list[tuple[MemoryItem, set[str]]] = []
    for memory in memories:
        words = _words(memory.content)
        if any(
            words and seen and len(words & seen) / len(words | seen) >= NEAR_DUPLICATE
            for _, seen in kept
        ):
            continue
        kept.append((memory, words))
    return [memory for memory, _ in kept]


def relevant_entities(data: ReflectionInput, memories: list[MemoryItem]) -> list[Entity]:
    """Entities named in the recalled memories or sharing a word with the query."""
    query_words = _words(data.query)
    texts = [memory.content.lower() for memory in memories]
    chosen = []
    for entity in data.state.entities:
        name = entity.name.lower()
        if any(name in text for text in texts) or (_words(name) & query_words):
            chosen.append(entity)
    return chosen


class ExtractiveReasoner:
    """Gathers, groups by entity, removes near-duplicates, lists current values, flags doubts."""

    reasoner_id = "extractive@1"

    def reflect(self, data: ReflectionInput) -> Draft:
        """The synthesis; every line cites the memories it came from."""
        memories = deduplicate(data.memories)
        entities = relevant_entities(data, memories)
        sources: list[uuid.UUID] = []

        def cite(memory_id: uuid.UUID) -> str:
            if memory_id not in sources:
                sources.append(memory_id)
            return _short(memory_id)

        groups: dict[str, list[MemoryItem]] = defaultdict(list)
        for memory in memories:
            text = memory.content.lower()
            topic = next((e.name for e in entities if e.name.lower() in text), GENERAL)
            groups[topic].append(memory)

        lines = [
            f'Summary of "{data.query}" at {_where(data.scope)}: '
            f"{len(memories)} findings, {len(entities)} entities."
        ]
        claims = _claims(entities)
        if claims:
            lines.append("Current facts:")
            for (etype, name, key), by_value in claims.items():
                values = " | ".join(
                    value
                    + (
                        f" (at {', '.join(sorted({_where(a.scope) for a, _ in held}))})"
                        if len(by_value) > 1
                        else ""
                    )
                    for value, held in by_value.items()
                )
                ids = ", ".join(
                    dict.fromkeys(cite(a.memory_id) for held in by_value.values() for a, _ in held)
                )
                lines.append(f"- {etype}/{name}: {key} = {values} [{ids}]")
        order = [e.name for e in entities if e.name in groups] + (
            [GENERAL] if GENERAL in groups else []
        )
        for topic in dict.fromkeys(order):
            lines.append(f"Findings: {topic}" if topic != GENERAL else "Findings:")
            for memory in groups[topic]:
                lines.append(
                    f"- {_gist(memory.content)} [{cite(memory.id)}; {_where(memory.scope)}]"
                )
        uncertain = _uncertain(entities, cite)
        if uncertain:
            lines.append("Uncertain:")
            lines.extend(f"- {item}" for item in uncertain)
        if not memories and not entities:
            lines.append("Nothing visible from this scope bears on the question yet.")
        return Draft(summary="\n".join(lines), sources=sources, uncertain=uncertain)


Claim = tuple[Attribute, Entity]


def _claims(entities: list[Entity]) -> dict[tuple[str, str, str], dict[str, list[Claim]]]:
    """Current values per (type, name, key) across scopes, in a stable order."""
    claims: dict[tuple[str, str, str], dict[str, list[Claim]]] = {}
    for entity in entities:
        for attr in entity.attributes:
            if attr.superseded_by is None:
                key = (entity.type, entity.name, attr.key)
                claims.setdefault(key, {}).setdefault(attr.value, []).append((attr, entity))
    return claims


def _uncertain(entities: list[Entity], cite: Callable[[uuid.UUID], str]) -> list[str]:
    """Superseded values, scopes that disagree, and claims resting on a single memory."""
    out: list[str] = []
    for entity in entities:
        for attr in entity.attributes:
            if attr.superseded_by is not None:
                out.append(
                    f"{entity.name}.{attr.key} changed: {attr.value} → {attr.superseded_by.value}"
                    f" [{cite(attr.memory_id)}→{cite(attr.superseded_by.memory_id)}]"
                )
    for (etype, name, key), by_value in _claims(entities).items():
        # single values that differ can only come from different scopes (each scope's chain
        # has one current value); multi values accumulate, several current ones agree
        singles = {
            value: held
            for value, held in by_value.items()
            if any(a.cardinality == "single" for a, _ in held)
        }
        if len(singles) > 1:
            where = "; ".join(
                f"{value} at {', '.join(sorted({_where(a.scope) for a, _ in held}))}"
                for value, held in singles.items()
            )
            out.append(f"{etype}/{name}.{key} differs between scopes: {where}")
            continue
        if len(by_value) > 1:
            continue
        [(value, held)] = by_value.items()
        backers = {
            a.memory_id
            for e in entities
            if e.type == etype and e.name == name
            for a in e.attributes
            if a.key == key and a.value == value
        }
        if len(backers) == 1 and held[0][0].cardinality == "single":
            out.append(
                f"{name}.{key} = {value} rests on a single source [{cite(held[0][0].memory_id)}]"
            )
    return list(dict.fromkeys(out))
