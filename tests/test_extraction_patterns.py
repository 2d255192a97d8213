"""PatternExtractor: the seed examples exactly, every documented form, determinism, registered types."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectron.config import Settings
from spectron.extraction import Extractor, make_extractor
from spectron.extraction.patterns import DEFAULT_TYPES, PatternExtractor, merge_types
from spectron.facts import AttributeFact, AttributeSpec, EntityRef, EntityType, Facts, RelationFact

ENTERPRISE = EntityRef(type="CustomerSegment", name="enterprise")
COMPLIANCE = EntityRef(type="Feature", name="compliance_features")
COMPETITOR_X = EntityRef(type="Competitor", name="Competitor X")


def extract(text: str, types: list[EntityType] | None = None) -> Facts:
    """Facts from the pattern extractor."""
    return PatternExtractor().extract(text, types or [])


def attributes(facts: Facts) -> list[tuple[str, str, str, str, str]]:
    """(type, name, key, value, cardinality) of every attribute, for compact assertions."""
    return [(a.entity.type, a.entity.name, a.key, a.value, a.cardinality) for a in facts.attributes]


def relations(facts: Facts) -> list[tuple[str, str, str, str, str]]:
    """(subject type, subject name, predicate, object type, object name) of every relation."""
    return [
        (r.subject.type, r.subject.name, r.predicate, r.object.type, r.object.name)
        for r in facts.relations
    ]


# ---------------------------------------------------------------- the seed page's examples


def test_seed_entity_example_exactly() -> None:
    facts = extract("The enterprise customer segment prioritises SOC2 compliance over cost.")
    assert facts == Facts(
        entities=[ENTERPRISE, COMPLIANCE],
        attributes=[AttributeFact(entity=ENTERPRISE, key="top_priority", value="SOC2 compliance")],
        relations=[RelationFact(subject=ENTERPRISE, predicate="values", object=COMPLIANCE)],
    )


def test_seed_conflict_example_same_entity_and_key() -> None:
    first = extract("Competitor X's Pro tier costs $299/mo.")
    second = extract("Competitor X's Pro tier costs $349/mo.")
    assert first == Facts(
        entities=[COMPETITOR_X],
        attributes=[AttributeFact(entity=COMPETITOR_X, key="pro_tier_price", value="$299/mo")],
    )
    assert second.entities == first.entities
    assert attributes(second) == [
        ("Competitor", "Competitor X", "pro_tier_price", "$349/mo", "single")
    ]


def test_seed_metadata_example_meets_the_same_entity() -> None:
    facts = extract("Customer segment 'enterprise' values compliance features most.")
    assert facts.entities == [ENTERPRISE, COMPLIANCE]
    assert attributes(facts) == [
        ("CustomerSegment", "enterprise", "top_priority", "compliance features", "single")
    ]
    assert relations(facts) == [
        ("CustomerSegment", "enterprise", "values", "Feature", "compliance_features")
    ]


def test_seed_launch_example() -> None:
    facts = extract("Competitor X launched a new pricing tier at $299/mo targeting SMBs.")
    tier = EntityRef(type="Product", name="new pricing tier")
    assert facts == Facts(
        entities=[COMPETITOR_X, tier],
        attributes=[AttributeFact(entity=tier, key="price", value="$299/mo")],
        relations=[RelationFact(subject=COMPETITOR_X, predicate="launched", object=tier)],
    )


def test_seed_price_change_example() -> None:
    facts = extract("Competitor X raised prices by 20% in Q2.")
    assert facts.entities == [COMPETITOR_X]
    assert attributes(facts) == [("Competitor", "Competitor X", "price_change", "+20%", "single")]


def test_the_seed_page_paragraphs_together() -> None:
    text = (
        "[pricing trends] Competitor X launched a new pricing tier at $299/mo targeting SMBs. "
        "Competitor X raised prices by 20% in Q2.\n"
        "The enterprise customer segment prioritises SOC2 compliance over cost."
    )
    facts = extract(text)
    assert [(e.type, e.name) for e in facts.entities] == [
        ("Competitor", "Competitor X"),
        ("Product", "new pricing tier"),
        ("CustomerSegment", "enterprise"),
        ("Feature", "compliance_features"),
    ]
    assert [a.key for a in facts.attributes] == ["price", "price_change", "top_priority"]


# ---------------------------------------------------------------- each form


@pytest.mark.parametrize(
    "text",
    [
        "Acme's CEO is Jane Doe.",
        "The CEO of Acme is Jane Doe.",
        "Acme's chief executive is Jane Doe.",
        "Acme’s CEO is currently Jane Doe as of March 2024.",
    ],
)
def test_possessive_and_of_forms(text: str) -> None:
    facts = extract(text)
    assert facts.entities == [EntityRef(type="Organization", name="Acme")]
    assert attributes(facts) == [("Organization", "Acme", "ceo", "Jane Doe", "single")]


def test_unknown_attribute_key_is_the_slug_of_the_phrase() -> None:
    facts = extract("Globex's Annual Revenue is $12M.")
    assert attributes(facts) == [("Organization", "Globex", "annual_revenue", "$12M", "single")]


def test_multi_valued_attribute_splits_the_list() -> None:
    facts = extract("Acme's founders are Ann, Bob and Cy.")
    assert attributes(facts) == [
        ("Organization", "Acme", "founder", name, "multi") for name in ("Ann", "Bob", "Cy")
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Competitor X raised prices by 20% in Q2.", "+20%"),
        ("In Q2, Competitor X increased its prices by 20 percent.", "+20%"),
        ("Competitor X has cut prices by 15%.", "-15%"),
        ("Competitor X lowered pricing by 7.5%, citing churn.", "-7.5%"),
        ("Competitor X's prices rose by 3% last quarter.", "+3%"),
        ("Competitor X's prices fell 10% in 2024.", "-10%"),
        ("Competitor X reduced prices by $20/mo.", "-$20/mo"),
    ],
)
def test_change_form(text: str, value: str) -> None:
    facts = extract(text)
    assert attributes(facts) == [("Competitor", "Competitor X", "price_change", value, "single")]


def test_change_of_other_measures_keeps_their_name() -> None:
    facts = extract("Acme increased headcount by 12%. Acme grew sales by 30%.")
    assert attributes(facts) == [
        ("Organization", "Acme", "employees_change", "+12%", "single"),
        ("Organization", "Acme", "sales_change", "+30%", "single"),
    ]


def test_launch_without_price_and_with_a_called_name() -> None:
    facts = extract("Globex released Widget Pro in March. Acme launched a tier called 'Max'.")
    assert relations(facts) == [
        ("Organization", "Globex", "launched", "Product", "Widget Pro"),
        ("Organization", "Acme", "launched", "Product", "Max"),
    ]
    assert facts.attributes == []


def test_launch_price_after_the_audience() -> None:
    facts = extract("Acme unveiled an Enterprise plan for large teams priced at $99 per seat.")
    assert attributes(facts) == [("Product", "Enterprise plan", "price", "$99 per seat", "single")]


@pytest.mark.parametrize(
    ("text", "entity", "key", "value"),
    [
        ("Competitor X's Pro tier costs $299/mo.", COMPETITOR_X, "pro_tier_price", "$299/mo"),
        ("The Pro tier of Competitor X costs $349/mo.", COMPETITOR_X, "pro_tier_price", "$349/mo"),
        ("Competitor X's Pro tier price is $349/mo.", COMPETITOR_X, "pro_tier_price", "$349/mo"),
        (
            "The price of the Pro tier of Competitor X is $349/mo.",
            COMPETITOR_X,
            "pro_tier_price",
            "$349/mo",
        ),
        (
            "Competitor X charges $349/mo for its Pro tier.",
            COMPETITOR_X,
            "pro_tier_price",
            "$349/mo",
        ),
        ("The Widget costs $10.", EntityRef(type="Product", name="Widget"), "price", "$10"),
        (
            "Acme now costs only €1.2M per year.",
            EntityRef(type="Product", name="Acme"),
            "price",
            "€1.2M per year",
        ),
    ],
)
def test_price_forms(text: str, entity: EntityRef, key: str, value: str) -> None:
    facts = extract(text)
    assert facts.entities == [entity]
    assert facts.attributes == [AttributeFact(entity=entity, key=key, value=value)]


@pytest.mark.parametrize(
    ("text", "feature"),
    [
        ("The enterprise customer segment values data security.", "security_features"),
        (
            "The enterprise customer segment prioritizes integrations over support.",
            "integration_features",
        ),
        ("The enterprise customer segment prefers transparent pricing.", "pricing_features"),
        ("The enterprise customer segment cares most about GDPR.", "compliance_features"),
        ("The enterprise customer segment favours SSO above all.", "security_features"),
    ],
)
def test_preference_maps_areas_to_features(text: str, feature: str) -> None:
    facts = extract(text)
    assert facts.entities[0] == ENTERPRISE
    assert relations(facts) == [("CustomerSegment", "enterprise", "values", "Feature", feature)]
    assert [a.key for a in facts.attributes] == ["top_priority"]


def test_preference_lists_and_concepts() -> None:
    facts = extract("Enterprise customers value uptime and brand reputation.")
    assert attributes(facts) == [
        ("CustomerSegment", "Enterprise", "top_priority", "uptime and brand reputation", "single")
    ]
    assert relations(facts) == [
        ("CustomerSegment", "Enterprise", "values", "Feature", "reliability_features"),
        ("CustomerSegment", "Enterprise", "values", "Concept", "brand_reputation"),
    ]


# ---------------------------------------------------------------- nothing recognised


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n ",
        "Hello there!",
        "It raised prices by 10%.",
        "Competitor X has not raised prices by 10%.",
        "Competitor X may launch a new tier at $5.",
        "Acme's CEO was Jane Doe.",
        "Acme and Globex raised prices by 10%.",
        "We should talk about pricing tomorrow?",
        "The value of nothing",
        "\x00\x00 Acme\x00's CEO is Jane.",
        "Acme's CEO is " + "x" * 990,
        "a values b over " * 61,
    ],
)
def test_irrelevant_or_hostile_text_gives_empty_facts(text: str) -> None:
    assert extract(text).is_empty()


def test_facts_stop_at_the_limits() -> None:
    text = " ".join(f"Company{i}'s CEO is Person{i}." for i in range(150))
    facts = extract(text)
    assert len(facts.entities) == 100
    assert len(facts.attributes) == 100
    assert facts.entities[-1].name == "Company99"


def test_duplicates_are_listed_once() -> None:
    facts = extract("Acme's CEO is Jane Doe. Acme's CEO is Jane Doe.")
    assert len(facts.entities) == 1
    assert len(facts.attributes) == 1


# ---------------------------------------------------------------- determinism


def test_same_input_same_facts() -> None:
    text = (
        "Competitor X's Pro tier costs $299/mo. The enterprise customer segment prioritises "
        "SOC2 compliance over cost. Acme's founders are Ann and Bo."
    )
    vendor = EntityType(name="Vendor", triggers=["vendor"])
    segment = EntityType(name="Segment", triggers=["segment"])
    runs = [
        PatternExtractor().extract(text, types).model_dump_json()
        for types in ([vendor, segment], [segment, vendor], [vendor, segment])
    ]
    assert runs[0] == runs[1] == runs[2]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_and_is_deterministic(text: str) -> None:
    first = extract(text)
    assert extract(text) == first
    assert Facts.model_validate(first.model_dump()) == first


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Acme's",
                "CEO",
                "is",
                "raised",
                "prices",
                "by",
                "20%",
                "$299/mo",
                "costs",
                "launched",
                "values",
                "over",
                "the",
                "of",
                "customer segment",
                "Competitor X",
                "'enterprise'",
                "in Q2",
                ".",
                ",",
                "and",
            ]
        ),
        max_size=30,
    )
)
def test_near_miss_sentences_never_raise(words: list[str]) -> None:
    facts = extract(" ".join(words))
    assert Facts.model_validate(facts.model_dump()) == facts


# ---------------------------------------------------------------- registered types


def test_registered_trigger_overrides_builtin() -> None:
    vendor = EntityType(name="Vendor", triggers=["vendor"])
    assert extract("The Acme vendor's CEO is Bob.").entities == [
        EntityRef(type="Organization", name="Acme")
    ]
    assert extract("The Acme vendor's CEO is Bob.", [vendor]).entities == [
        EntityRef(type="Vendor", name="Acme")
    ]
    assert extract("Vendor Acme raised prices by 5%.", [vendor]).entities == [
        EntityRef(type="Vendor", name="Vendor Acme")
    ]
    assert extract("The vendor Initech's CEO is Bill.", [vendor]).entities == [
        EntityRef(type="Vendor", name="Initech")
    ]


def test_registered_type_replaces_builtin_of_the_same_name() -> None:
    segment = EntityType(
        name="CustomerSegment",
        triggers=["cohort"],
        attributes=[AttributeSpec(key="main_concern", synonyms=["prioritises", "prioritizes"])],
    )
    facts = extract("The enterprise cohort prioritises SOC2 compliance.", [segment])
    assert attributes(facts) == [
        ("CustomerSegment", "enterprise", "main_concern", "SOC2 compliance", "single")
    ]
    # the built-in triggers are gone with the built-in type
    assert extract("The enterprise customer segment values speed.", [segment]).entities[0] == (
        EntityRef(type="Organization", name="enterprise customer segment")
    )


def test_registered_trigger_naming_one_entity_and_its_attributes() -> None:
    rival = EntityType(
        name="Rival",
        triggers=["Globex"],
        attributes=[AttributeSpec(key="offices", synonyms=["office"], cardinality="multi")],
    )
    facts = extract("Globex's offices are Berlin and Paris.", [rival])
    assert attributes(facts) == [
        ("Rival", "Globex", "offices", "Berlin", "multi"),
        ("Rival", "Globex", "offices", "Paris", "multi"),
    ]


def test_registered_trigger_names_the_valued_concept() -> None:
    feature = EntityType(name="Capability", triggers=["audit logs"])
    facts = extract("The enterprise segment values audit logs.", [feature])
    assert relations(facts) == [
        ("CustomerSegment", "enterprise", "values", "Capability", "audit logs")
    ]


def test_longest_trigger_wins_then_type_name() -> None:
    broad = EntityType(name="Zone", triggers=["segment"])
    narrow = EntityType(name="Market", triggers=["market segment"])
    same = EntityType(name="Area", triggers=["segment"])
    assert extract("The SMB market segment values speed.", [broad, narrow]).entities[0] == (
        EntityRef(type="Market", name="SMB")
    )
    assert extract("The SMB segment values speed.", [broad, same]).entities[0] == (
        EntityRef(type="Area", name="SMB")
    )


def test_merge_types_keeps_registered_first() -> None:
    vendor = EntityType(name="Vendor", triggers=["vendor"])
    merged = merge_types([vendor])
    assert merged[0] == vendor
    assert merged[1:] == DEFAULT_TYPES


# ---------------------------------------------------------------- the port


def test_make_extractor_defaults_to_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECTRON_EXTRACTOR", raising=False)
    extractor: Extractor = make_extractor(None, Settings.from_env())
    assert isinstance(extractor, PatternExtractor)
    assert extractor.extractor_id == "patterns@1"
    with pytest.raises(ValueError, match="unknown extractor"):
        make_extractor("oracle")
