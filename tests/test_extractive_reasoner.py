"""The extractive reasoner's doubts: scopes that disagree on a single value, not multi values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from spectron.models import Attribute, Entity, State
from spectron.reasoning import ReflectionInput
from spectron.reasoning.extractive import ExtractiveReasoner

ORG = {"org": "acme"}
TEAM = {"org": "acme", "team": "red"}


def attribute(key: str, value: str, cardinality: str, scope: dict[str, str]) -> Attribute:
    return Attribute(
        key=key,
        value=value,
        cardinality=cardinality,
        scope=scope,
        memory_id=uuid.uuid4(),
        principal="agent:test",
        recorded_at=datetime.now(UTC),
        extractor="caller",
    )


def doubts(*attributes: Attribute) -> list[str]:
    entity = Entity(
        type="Organization",
        name="Acme",
        scope=ORG,
        scopes=[ORG, TEAM],
        attributes=list(attributes),
        relations=[],
    )
    state = State(scope=TEAM, entities=[entity], relations=[])
    return ExtractiveReasoner().reflect(ReflectionInput("Acme", TEAM, [], state)).uncertain


def test_multi_values_at_one_scope_are_no_disagreement() -> None:
    found = doubts(
        attribute("founder", "Ann", "multi", ORG), attribute("founder", "Bo", "multi", ORG)
    )
    assert not [doubt for doubt in found if "differs" in doubt]


def test_single_values_that_differ_by_scope_are_one() -> None:
    found = doubts(attribute("ceo", "Ann", "single", ORG), attribute("ceo", "Bo", "single", TEAM))
    assert found == [
        "Organization/Acme.ceo differs between scopes: Ann at org=acme; Bo at org=acme/team=red"
    ]
