"""PatternExtractor: offline, deterministic facts from a fixed set of English sentence forms.

No network, no model: the same text and types always give the same Facts, in text order.

How text is read
----------------
* The text is split into sentences at ``.``, ``!``, ``?`` or ``;`` followed by white space, and at
  line breaks ("Inc. raised" therefore splits too). Each sentence is read on its own, so a fact
  never spans two sentences and pronouns ("It raised prices") are not resolved.
* Per sentence: a leading ``[tag]`` (as in ``"[pricing trends] ..."``), a bullet (``-``, ``*``,
  ``•``), a leading time ("In Q2, ...", "Last year, ...") and trailing punctuation are dropped;
  curly apostrophes and quotes count as straight ones. Sentences over 1,000 characters are skipped.
* The forms below are tried in the order listed; the first that yields facts wins, so a sentence
  gives facts from one form only. A sentence that matches no form gives nothing; text with no
  recognised sentence gives empty Facts. Extraction never raises.
* Subjects (X) are noun phrases of at most 8 words without a verb or conjunction of their own
  ("is", "has", "which", "and", ...), and never pronouns; otherwise the sentence is skipped.
* Trailing times are dropped from values and keys: "in Q2", "in 2024", "since March 2023", "as of
  Q3 FY25", "last quarter", "this year", "recently".
* The output stops before the sentence that would exceed the Facts limits (100 entities, 200
  attributes, 200 relations); exact duplicates are listed once.

Forms (X, Y, Z are phrases; N a number; $Z a money amount such as "$299/mo", "$29 per user per
month", "€1.2M", "$5k")
------------------------------------------------------------------------------------------------
1. Change, "X's Y rose|increased|grew|went up|jumped|climbed|fell|dropped|decreased|declined|went
   down|shrank [by] N%|$Z" and "X [has] raised|increased|hiked|upped|boosted|lifted|grew|cut|
   reduced|lowered|decreased|dropped|slashed|trimmed Y [by] N%|$Z": ``X.<y>_change = "+N%"`` (or
   ``"-N%"``, ``"+$Z"``), single-valued; anything after the amount is not part of the value.
   "Competitor X raised prices by 20% in Q2." → Competitor/"Competitor X".price_change = "+20%".
   <y> is Y's attribute key (see Keys) after a simple singular ("prices" → price; "sales" stays).
2. Launch, "X [has] launched|released|introduced|unveiled|announced|rolled out|debuted|shipped Y
   [at|for|priced at|starting at|from $Z] [...]": relation ``X → launched → Y`` with Y typed by
   triggers, else a Product named as written (articles dropped, "new" kept, "a tier called Pro" →
   "Pro"); if a price follows Y ("at $Z", "for $Z", "priced at $Z", "costing $Z") also
   ``Y.price = "$Z"``. Y ends at a comma or at "targeting", "aimed at", "for", "to", "with",
   "that", "which", "in", "on", "across", "at". "Competitor X launched a new pricing tier at
   $299/mo targeting SMBs." → Competitor X launched Product/"new pricing tier";
   Product/"new pricing tier".price = "$299/mo" (the audience, "SMBs", is not extracted).
3. Price, "X costs|is priced at|sells for|retails for|starts at $Z" and "X charges $Z for Y":
   when X is "A's B" or "the B of A" (and for "charges ... for B"), ``A.<b>_price = "$Z"``,
   otherwise ``X.price = "$Z"`` with X typed by triggers, else Product.
   "Competitor X's Pro tier costs $299/mo." →
   Competitor/"Competitor X".pro_tier_price = "$299/mo";
   a later "... costs $349/mo." gives the same entity and key, so the later write supersedes.
4. Preference, "X [most|mainly|...] prioritise(s|d)|prioritize(s|d)|value(s|d)|prefer(s|red)|
   favo(u)r(s|ed)|care(s|d) most about Y [over|above|before|more than|rather than|instead of|
   ahead of W] [most|the most|above all|first|highly]":
   ``X.top_priority = "Y"`` (the key is X's type attribute whose synonyms include the verb, e.g. a
   registered ``AttributeSpec("main_concern", synonyms=["prioritises"])``), and for each part of Y
   split at commas and "and", a relation ``X → values → concept``. W is not extracted.
   Concepts: a registered type's trigger names the concept (mention rules below); otherwise Y's
   right-most feature-area word (FEATURE_AREAS: "SOC2"/"GDPR"/"compliance" → compliance,
   "SSO"/"encryption"/"security" → security, "API"/"integrations" → integration,
   "price"/"cost" → pricing, "uptime" → reliability, ...) gives ``Feature/<area>_features``;
   otherwise ``Concept/<slug(Y)>``.
   "The enterprise customer segment prioritises SOC2 compliance over cost." →
   CustomerSegment/enterprise.top_priority = "SOC2 compliance";
   enterprise → values → Feature/compliance_features. Likewise "Customer segment 'enterprise'
   values compliance features most." → the same entity, value "compliance features", relation.
5. Possessive, "X's Y is|are Z" (also "Xs' Y"): ``X.<y> = "Z"``.
   "Acme's CEO is Jane Doe." → Organization/Acme.ceo = "Jane Doe".
6. Of, "The Y of X is|are Z": the same as form 5. "The CEO of Acme is Jane Doe." → the same fact.
   In forms 5 and 6 a possessive inside the subject or Y joins the key: "Competitor X's Pro tier
   price is $349/mo" and "The price of the Pro tier of Competitor X is $349/mo" →
   Competitor X.pro_tier_price, as in form 3. For a multi-valued key, Z is split at commas and
   "and" into one fact per item ("Acme's founders are Ann and Bo" → founder = Ann, founder = Bo).

Entity types and names (X, and Y in form 2)
-------------------------------------------
Leading articles and possessive determiners ("the", "a", "our", "its", ...) are dropped. Then the
registered types are tried, then DEFAULT_TYPES (a registered type replaces the built-in one of the
same name); within each group the longest matching trigger wins, ties going to the type name first
in alphabetical order. A trigger t matches (case-insensitively, on whole words) when:

* the phrase is t: the name is the phrase ("Globex" with a registered trigger "Globex");
* the phrase ends with t: the name is the words before it ("enterprise customer segment" →
  CustomerSegment/enterprise; "the Acme vendor" with a registered Vendor type → Vendor/Acme);
* the phrase starts with t: the name is a quoted name or one after "called"/"named" if present
  ("customer segment 'enterprise'" → enterprise); otherwise, when t is written capitalised it is
  part of a title and the whole phrase is the name ("Competitor X" → Competitor/"Competitor X",
  "Vendor Acme" → Vendor/"Vendor Acme"), and when it is written in lower case it is a common
  noun before the name ("the vendor Initech" → Vendor/Initech; "the competitor X" → X).

No trigger: the object of "launched" and the priced thing of form 3 are Products; every other
phrase is an Organization (FALLBACK_TYPE) — the usual subject of these memories. Names keep their
casing and are never merged across spellings ("Enterprise" and "enterprise" are two names).

Keys
----
A phrase (Y) becomes a key through the entity's type: the attribute whose key (underscores read as
spaces) or a synonym equals the phrase, case-insensitively, after dropping a leading "new",
"current" or "latest" (also tried in singular); that attribute also gives the cardinality
("Acme's chief executive is ..." → ceo). Otherwise the key is ``slug(phrase)``, single-valued.

Not covered
-----------
Negation and modality ("has not raised", "may launch"), questions, "was/were", relative
clauses, several subjects ("Acme and Globex raised ..."), several facts in one sentence, pronouns
and coreference, appositions ("Acme, a vendor, ..."), numbers written as words ("twenty
percent"), and any phrasing not listed above (it yields nothing rather than a guess).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from spectron.facts import (
    AttributeFact,
    AttributeSpec,
    Cardinality,
    EntityRef,
    EntityType,
    Facts,
    RelationFact,
    slug,
)

__all__ = [
    "DEFAULT_TYPES",
    "EXTRACTOR_ID",
    "FALLBACK_TYPE",
    "FEATURE_AREAS",
    "PatternExtractor",
    "merge_types",
]

EXTRACTOR_ID = "patterns@1"
FALLBACK_TYPE = "Organization"
PRODUCT_TYPE = "Product"
FEATURE_TYPE = "Feature"
CONCEPT_TYPE = "Concept"
MAX_SENTENCE_CHARS = 1000
_MAX_SUBJECT_WORDS = 8
_MAX_PHRASE_WORDS = 16


def _words(text: str) -> list[str]:
    """Vocabulary written as "a|b|c" (one line per list keeps the tables below readable)."""
    return text.split("|")


# Attributes every organisation-like type shares, so a Competitor's CEO and an Organization's CEO
# land under the same key.
_ORG_ATTRIBUTES = [
    AttributeSpec(key="ceo", synonyms=_words("CEO|chief executive|chief executive officer")),
    AttributeSpec(key="headquarters", synonyms=_words("HQ|head office|head quarters")),
    AttributeSpec(
        key="founder", synonyms=_words("founders|co-founder|co-founders"), cardinality="multi"
    ),
    AttributeSpec(key="employees", synonyms=_words("headcount|employee count|staff")),
    AttributeSpec(key="price", synonyms=_words("prices|pricing|list price")),
]
_PREFERENCE_SYNONYMS = (
    "priority|main priority|biggest priority|prioritises|prioritizes|values|prefers|favours|favors"
    "|cares most about"
)
_SEGMENT_TRIGGERS = (
    "customer segment|customer segments|segment|segments|customer|customers|buyers|users"
)

DEFAULT_TYPES: tuple[EntityType, ...] = (
    EntityType(
        name="CustomerSegment",
        triggers=_words(_SEGMENT_TRIGGERS),
        attributes=[AttributeSpec(key="top_priority", synonyms=_words(_PREFERENCE_SYNONYMS))],
    ),
    EntityType(
        name="Competitor",
        triggers=_words("competitor|competitors|rival"),
        attributes=_ORG_ATTRIBUTES,
    ),
    EntityType(
        name="Organization",
        triggers=_words("company|organization|organisation|vendor|supplier|startup"),
        attributes=_ORG_ATTRIBUTES,
    ),
    EntityType(
        name="Product",
        triggers=_words("product|products"),
        attributes=[AttributeSpec(key="price", synonyms=_words("prices|pricing|list price|cost"))],
    ),
    EntityType(name="Feature", triggers=_words("feature|features|capability|capabilities")),
    EntityType(name="Concept"),
)

# Feature areas: the object of "values" is Feature/<area>_features when its right-most area word
# is one of these, so "SOC2 compliance", "GDPR" and "audit logs" all meet in compliance_features.
FEATURE_AREAS: dict[str, tuple[str, ...]] = {
    area: tuple(_words(words))
    for area, words in {
        "compliance": "compliance|compliant|soc2|soc 2|soc-2|gdpr|hipaa|iso 27001|audit|audits"
        "|auditing|regulatory",
        "security": "security|secure|encryption|sso|single sign-on|access control",
        "privacy": "privacy|data residency",
        "integration": "integration|integrations|api|apis|connector|connectors|interoperability",
        "pricing": "price|prices|pricing|cost|costs|affordability|discount|discounts"
        "|value for money",
        "performance": "performance|speed|latency|throughput",
        "reliability": "reliability|uptime|availability|stability|sla|slas",
        "support": "support|customer service|onboarding",
        "usability": "usability|ease of use|ux|user experience|simplicity",
        "scalability": "scalability|scale",
        "customization": "customization|customisation|flexibility|configurability",
        "analytics": "analytics|reporting|reports|dashboards|insights",
        "collaboration": "collaboration|sharing|teamwork",
    }.items()
}

# ---------------------------------------------------------------- vocabulary shared by the forms

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_PERIOD = (
    r"(?:(?:early|mid|late|the\s+end\s+of|the\s+start\s+of)[\s-]+)?"
    r"(?:q[1-4](?:\s+(?:of\s+)?(?:fy\s?)?\d{2,4})?|h[12](?:\s+\d{4})?|fy\s?\d{2,4}|\d{4}"
    rf"|{_MONTH}(?:\s+\d{{1,2}})?(?:,?\s+\d{{4}})?"
    r"|(?:this|last|next|the\s+last|the\s+past)\s+(?:\w+\s+)?(?:year|quarter|month|week|day)s?)"
)
_RELATIVE = (
    r"(?:(?:this|last|next|the\s+past)\s+(?:year|quarter|month|week)|yesterday|today|recently"
    r"|earlier\s+this\s+(?:year|quarter|month|week))"
)
_TIME_TAIL = re.compile(
    rf"(?:\s*,)?\s+(?:(?:in|during|since|as\s+of|by|until|through|throughout|for|from|on|over)"
    rf"\s+{_PERIOD}|{_RELATIVE})$",
    re.IGNORECASE,
)
_TIME_HEAD = re.compile(
    rf"^(?:(?:in|during|since|as\s+of|by|on|over)\s+{_PERIOD}|{_RELATIVE}|{_PERIOD})\s*,\s*",
    re.IGNORECASE,
)
_MONEY = (
    r"(?:US)?[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:k|m|bn|b|million|billion)\b)?"
    r"(?:\s?(?:/|per\s+)(?:[a-z]+))*"
)
_AMOUNT = rf"(?:(?P<percent>\d+(?:\.\d+)?)\s?(?:%|percent\b|per\s?cent\b)|(?P<money>{_MONEY}))"
_REST = r"(?P<rest>(?:[\s,;(].*)?)"
_SUBJECT = r"(?P<x>\S.{0,150}?)"
_AUX = r"(?:(?:has|have|had|just|recently|now|also)\s+)*"

_DETERMINER = re.compile(
    r"^(?:the|a|an|our|their|its|his|her|this|that|these|those|my|your)\s+", re.IGNORECASE
)
_KEY_ADJECTIVE = re.compile(r"^(?:new|current|latest)\s+", re.IGNORECASE)
_POSSESSIVE = re.compile(r"(?:(?<=\w)'s|(?<=s)')(?=\s|$)")
_CLAUSE_WORDS = frozenset(
    "is are was were be been being am has have had will would shall should can could may might "
    "must do does did not who which that and or but if when while because although whether".split()
)
# single words that never name an entity: pronouns, and articles left alone by a bad split
_NOT_NAMES = frozenset(
    "it he she they we i you this that these those there here which who what one the a an".split()
)
_QUOTED_SPAN = re.compile(r"(?<!\w)(['\"])[^'\"]+\1(?!\w)")
_QUOTES = "\"'"
_CALLED = re.compile(r"^(?:(?P<before>.*?)\s+)?(?:called|named)\s+(?P<name>.+)$", re.IGNORECASE)
_LIST_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+(?:and|&)\s+", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\s*\n\s*")
_LEADING_NOISE = re.compile(r"^(?:\[[^\]]{0,200}\]\s*|[-*•]\s+)+")
_TRAILING_PUNCTUATION = re.compile(r"[\s.!?;:,]+$")
_NO_PLURAL = re.compile(r"(?:ss|us|is|sales|news|series|analytics|logistics|metrics)$")

# ------------------------------------------------------------------------------ the extractor


class PatternExtractor:
    """Facts from the sentence forms in this module's docstring; offline and deterministic."""

    extractor_id = EXTRACTOR_ID

    def extract(self, content: str, types: Sequence[EntityType]) -> Facts:
        """Facts from every recognised sentence of `content`, in text order; never raises."""
        context = _Context(merge_types(types), frozenset(t.name for t in types))
        collected = _Found()
        for sentence in _sentences(content):
            found = _read_sentence(sentence, context)
            if found is None:
                continue
            if not collected.absorb(found):
                break  # the next facts would not fit the Facts limits: stop in text order
        return Facts(
            entities=collected.entities,
            attributes=collected.attributes,
            relations=collected.relations,
        )


def merge_types(registered: Iterable[EntityType]) -> tuple[EntityType, ...]:
    """Registered types (the last of each name wins) then the built-in ones not replaced by name."""
    chosen = {entity_type.name: entity_type for entity_type in registered}
    builtin = [entity_type for entity_type in DEFAULT_TYPES if entity_type.name not in chosen]
    return (*chosen.values(), *builtin)


@dataclass
class _Found:
    """Facts from one sentence, or collected over the text (duplicates dropped, limits kept)."""

    entities: list[EntityRef] = field(default_factory=list)
    attributes: list[AttributeFact] = field(default_factory=list)
    relations: list[RelationFact] = field(default_factory=list)

    def absorb(self, other: _Found) -> bool:
        """Add `other`'s new facts; False (adding nothing) when they would exceed a Facts limit."""
        entities = [e for e in dict.fromkeys(other.entities) if e not in self.entities]
        attributes = [a for a in dict.fromkeys(other.attributes) if a not in self.attributes]
        relations = [r for r in dict.fromkeys(other.relations) if r not in self.relations]
        if (
            len(self.entities) + len(entities) > 100
            or len(self.attributes) + len(attributes) > 200
            or len(self.relations) + len(relations) > 200
        ):
            return False
        self.entities += entities
        self.attributes += attributes
        self.relations += relations
        return True


@dataclass(frozen=True)
class _Context:
    """The types in resolution order (registered first), and which of them were registered."""

    types: tuple[EntityType, ...]
    registered: frozenset[str]

    def named(self, name: str) -> EntityType | None:
        """The type called `name`, if any."""
        return next((t for t in self.types if t.name == name), None)

    def groups(self, registered_only: bool = False) -> list[list[EntityType]]:
        """Types in trigger-resolution groups: registered, then built-in."""
        first = [t for t in self.types if t.name in self.registered]
        if registered_only:
            return [first]
        return [first, [t for t in self.types if t.name not in self.registered]]


def _sentences(content: str) -> list[str]:
    """Cleaned sentences of `content` (see the module docstring)."""
    text = content.replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    sentences = []
    for raw in _SENTENCE_SPLIT.split(text):
        if len(raw) > MAX_SENTENCE_CHARS:
            continue
        sentence = _LEADING_NOISE.sub("", " ".join(raw.split()))
        sentence = _TIME_HEAD.sub("", sentence)
        sentence = _TRAILING_PUNCTUATION.sub("", sentence)
        if sentence:
            sentences.append(sentence)
    return sentences


def _read_sentence(sentence: str, context: _Context) -> _Found | None:
    """Facts of the first form that reads `sentence`, or None."""
    for form in _FORMS:
        try:
            found = form(sentence, context)
        except ValidationError:
            found = None  # e.g. a name over 200 characters: not a fact this extractor can state
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------ the forms

_CHANGE_INTRANSITIVE = re.compile(
    rf"^(?P<x>\S.{{0,150}}?)(?:'s|(?<=s)')\s+(?P<y>\S.{{0,150}}?)\s+{_AUX}"
    r"(?P<verb>rose|risen|increased|grew|grown|went\s+up|gone\s+up|jumped|climbed|fell|fallen"
    r"|dropped|decreased|declined|went\s+down|gone\s+down|shrank|shrunk)"
    rf"\s+(?:by\s+)?{_AMOUNT}{_REST}$",
    re.IGNORECASE,
)
_CHANGE_TRANSITIVE = re.compile(
    rf"^{_SUBJECT}\s+{_AUX}"
    r"(?P<verb>raised|increased|hiked|upped|boosted|lifted|grew|cut|reduced|lowered|decreased"
    r"|dropped|slashed|trimmed)"
    rf"\s+(?!by\s)(?P<y>\S.{{0,150}}?)\s+(?:by\s+)?{_AMOUNT}{_REST}$",
    re.IGNORECASE,
)
_DOWN_VERBS = re.compile(
    r"^(?:fell|fallen|dropped|decreased|declined|went\s+down|gone\s+down|shrank|shrunk"
    r"|cut|reduced|lowered|slashed|trimmed)$",
    re.IGNORECASE,
)


def _change(sentence: str, context: _Context) -> _Found | None:
    """Form 1: X's Y rose by N% / X raised Y by N% → X.<y>_change = "±N%"."""
    match = _CHANGE_INTRANSITIVE.match(sentence) or _CHANGE_TRANSITIVE.match(sentence)
    if match is None:
        return None
    subject = _subject(match["x"], context)
    measure = _phrase(match["y"])
    if subject is None or measure is None:
        return None
    sign = "-" if _DOWN_VERBS.match(match["verb"]) else "+"
    amount = f"{match['percent']}%" if match["percent"] else _squash(match["money"])
    key, _ = _key(context, subject.type, _singular(measure), "_change")
    fact = AttributeFact(entity=subject, key=key, value=f"{sign}{amount}", cardinality="single")
    return _Found([subject], [fact])


_LAUNCH = re.compile(
    rf"^{_SUBJECT}\s+{_AUX}"
    r"(?:launched|released|introduced|unveiled|announced|rolled\s+out|debuted|shipped)"
    r"\s+(?P<y>\S.{0,200}?)"
    rf"(?:\s+(?:at|for|priced\s+at|starting\s+at|from)\s+(?P<price>{_MONEY}))?"
    r"(?P<rest>(?:,|\s+(?:targeting|targetting|aimed\s+at|for|to|with|that|which|in|on|across|at)"
    r"\b).*)?$",
    re.IGNORECASE,
)
_LATER_PRICE = re.compile(
    rf"\b(?:at|for|priced\s+at|costing|starting\s+at)\s+(?P<price>{_MONEY})", re.IGNORECASE
)


def _launch(sentence: str, context: _Context) -> _Found | None:
    """Form 2: X launched Y [at $Z] → X launched Y; Y.price = "$Z"."""
    match = _LAUNCH.match(sentence)
    if match is None:
        return None
    subject = _subject(match["x"], context)
    launched = _launched_thing(match["y"], context)
    if subject is None or launched is None:
        return None
    found = _Found(
        [subject, launched],
        [],
        [RelationFact(subject=subject, predicate="launched", object=launched)],
    )
    price = match["price"]
    if price is None and match["rest"]:
        later = _LATER_PRICE.search(match["rest"])
        price = later["price"] if later else None
    if price:
        key, _ = _key(context, launched.type, "price")
        found.attributes.append(AttributeFact(entity=launched, key=key, value=_squash(price)))
    return found


_COST = re.compile(
    rf"^(?P<x>\S.{{0,200}}?)\s+(?:(?:now|currently|still|also)\s+)?"
    r"(?:costs?|(?:is|are)\s+(?:now\s+)?priced\s+at|priced\s+at|sells?\s+for|retails?\s+for"
    r"|starts?\s+at)"
    rf"\s+(?:(?:just|only|about|around|roughly|approximately)\s+)?(?P<price>{_MONEY}){_REST}$",
    re.IGNORECASE,
)
_CHARGES = re.compile(
    rf"^{_SUBJECT}\s+(?:(?:now|currently|still|also)\s+)?charges?\s+(?P<price>{_MONEY})"
    r"\s+for\s+(?P<item>\S.{0,150}?)(?P<rest>(?:,|\s+(?:to|targeting|with)\b).*)?$",
    re.IGNORECASE,
)


def _cost(sentence: str, context: _Context) -> _Found | None:
    """Form 3: X's Y costs $Z → X.<y>_price; X costs $Z → X.price; X charges $Z for Y."""
    match = _COST.match(sentence)
    if match is not None:
        owner, item = _owner_and_item(match["x"])
    else:
        match = _CHARGES.match(sentence)
        if match is None:
            return None
        owner, item = match["x"], match["item"]
    price = _squash(match["price"])
    if item is None:
        thing = _subject(owner, context, untyped=PRODUCT_TYPE)
        if thing is None:
            return None
        key, _ = _key(context, thing.type, "price")
        return _Found([thing], [AttributeFact(entity=thing, key=key, value=price)])
    subject, item_phrase = _subject(owner, context), _phrase(item)
    if subject is None or item_phrase is None:
        return None
    key, _ = _key(context, subject.type, f"{item_phrase} price")
    return _Found([subject], [AttributeFact(entity=subject, key=key, value=price)])


_PREFERENCE = re.compile(
    rf"^{_SUBJECT}\s+(?:(?:most|mostly|primarily|mainly|consistently|strongly|still|now|also)\s+)?"
    r"(?P<verb>prioriti[sz]e[sd]?|values?|valued|prefer(?:s|red)?|favou?r(?:s|ed)?"
    r"|cares?\s+most\s+about|cared\s+most\s+about)"
    r"\s+(?P<y>\S.{0,200}?)"
    r"(?:\s+(?:over|above|before|more\s+than|rather\s+than|instead\s+of|ahead\s+of)\s+(?P<w>.+?))?"
    r"(?:\s+(?:most(?:\s+of\s+all)?|the\s+most|above\s+all(?:\s+else)?|first|highly))?$",
    re.IGNORECASE,
)


def _preference(sentence: str, context: _Context) -> _Found | None:
    """Form 4: X prioritises Y [over W] → X.top_priority = Y; X → values → concept(Y)."""
    match = _PREFERENCE.match(sentence)
    if match is None:
        return None
    subject = _subject(match["x"], context)
    value = _phrase(match["y"])
    if subject is None or value is None:
        return None
    key = _preference_key(context, subject.type, match["verb"])
    found = _Found([subject], [AttributeFact(entity=subject, key=key, value=value)])
    for part in _LIST_SPLIT.split(value):
        if part.strip():
            concept = _concept(part, context)
            found.entities.append(concept)
            found.relations.append(
                RelationFact(subject=subject, predicate="values", object=concept)
            )
    return found


_POSSESSIVE_IS = re.compile(
    r"^(?P<x>\S.{0,150}?)(?:'s|(?<=s)')\s+(?P<y>\S.{0,150}?)\s+(?:is|are)"
    r"(?:\s+(?:now|currently|still))?\s+(?P<z>\S.*)$",
    re.IGNORECASE,
)
_OF_IS = re.compile(
    r"^the\s+(?P<y>\S.{0,150}?)\s+of\s+(?P<x>\S.{0,150}?)\s+(?:is|are)"
    r"(?:\s+(?:now|currently|still))?\s+(?P<z>\S.*)$",
    re.IGNORECASE,
)


def _copula(sentence: str, context: _Context) -> _Found | None:
    """Forms 5 and 6: X's Y is Z / the Y of X is Z → X.<y> = Z."""
    match = _POSSESSIVE_IS.match(sentence)
    if match is not None:
        owner, item = match["x"], None
    else:
        # only "the Y of X" splits X again: "Bank of America's CEO" keeps its owner whole
        match = _OF_IS.match(sentence)
        if match is None:
            return None
        owner, item = _owner_and_item(match["x"])
    subject = _subject(owner, context)
    attribute = _phrase(_POSSESSIVE.sub("", match["y"]))
    value = _strip_time(match["z"])
    if subject is None or attribute is None or not value:
        return None
    if item is not None:
        item_phrase = _phrase(item)
        if item_phrase is None:
            return None
        attribute = f"{item_phrase} {attribute}"
    key, cardinality = _key(context, subject.type, attribute)
    values = [v for v in _LIST_SPLIT.split(value) if v] if cardinality == "multi" else [value]
    facts = [
        AttributeFact(entity=subject, key=key, value=v, cardinality=cardinality) for v in values
    ]
    return _Found([subject], facts)


_FORMS: tuple[Callable[[str, _Context], _Found | None], ...] = (
    _change,
    _launch,
    _cost,
    _preference,
    _copula,
)

# ------------------------------------------------------------------------------ phrases


def _subject(phrase: str, context: _Context, untyped: str = FALLBACK_TYPE) -> EntityRef | None:
    """The entity a noun phrase names: typed by triggers, else `untyped`; None if not a subject."""
    text = _noun_phrase(phrase, _MAX_SUBJECT_WORDS)
    if text is None:
        return None
    for group in context.groups():
        resolved = _mention(text, group)
        if resolved is not None:
            return EntityRef(type=resolved[0], name=resolved[1])
    name = _unquote(text)
    return EntityRef(type=untyped, name=name) if name else None


def _launched_thing(phrase: str, context: _Context) -> EntityRef | None:
    """The object of "launched": "a tier called Pro" → Pro; typed by triggers, else a Product."""
    called = _CALLED.match(phrase.strip())
    if called is not None:
        phrase = called["name"]
    return _subject(phrase, context, untyped=PRODUCT_TYPE)


def _concept(phrase: str, context: _Context) -> EntityRef:
    """The object of "values": registered trigger, else Feature/<area>_features, else Concept."""
    text = _DETERMINER.sub("", phrase.strip())
    resolved = _mention(text, context.groups(registered_only=True)[0])
    if resolved is not None:
        return EntityRef(type=resolved[0], name=resolved[1])
    area = _feature_area(text)
    if area is not None:
        return EntityRef(type=FEATURE_TYPE, name=f"{area}_features")
    return EntityRef(type=CONCEPT_TYPE, name=slug(text))


def _feature_area(text: str) -> str | None:
    """The area of the right-most FEATURE_AREAS word in `text` (the head of a noun phrase)."""
    best: tuple[int, int, str] | None = None
    for area, words in FEATURE_AREAS.items():
        for word in words:
            for hit in _word_pattern(word).finditer(text):
                candidate = (hit.end(), hit.end() - hit.start(), area)
                if best is None or candidate[:2] > best[:2]:
                    best = candidate
    return best[2] if best else None


def _mention(text: str, types: Sequence[EntityType]) -> tuple[str, str] | None:
    """(type, name) by the longest trigger of `types` matching `text`; ties to the first name."""
    candidates = [
        (-len(trigger), entity_type.name, name)
        for entity_type in types
        for trigger in entity_type.triggers
        if (name := _trigger_name(text, trigger))
    ]
    if not candidates:
        return None
    _, type_name, name = min(candidates)
    return type_name, name


def _trigger_name(text: str, trigger: str) -> str | None:
    """The entity name when `text` is, ends with or starts with `trigger`; else None."""
    exact, suffix, prefix = _trigger_patterns(trigger)
    if exact.match(text):
        return _unquote(text)
    if (hit := suffix.match(text)) is not None:
        name = _unquote(hit["name"])
        if name and not _POSSESSIVE.search(name):
            return name
    if (hit := prefix.match(text)) is not None:
        rest = hit["rest"].strip()
        called = _CALLED.match(rest)
        if called is not None and not called["before"]:
            return _unquote(called["name"]) or None
        if len(rest) > 1 and rest[0] in _QUOTES and rest[-1] == rest[0]:
            return _unquote(rest) or None
        # "the vendor Initech": a lower-case trigger is a common noun before the name;
        # "Competitor X", "Vendor Acme": a capitalised one is part of the name (a title)
        return (_unquote(rest) or None) if text[0].islower() else text
    return None


@functools.lru_cache(maxsize=4096)
def _trigger_patterns(trigger: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Regexes for a phrase that is, ends with, or starts with `trigger` (whole words, any case)."""
    words = r"\s+".join(re.escape(word) for word in trigger.split())
    return (
        re.compile(rf"^['\"]?{words}['\"]?$", re.IGNORECASE),
        re.compile(rf"^(?P<name>.+?)\s+{words}$", re.IGNORECASE),
        re.compile(rf"^{words}\s+(?P<rest>.+)$", re.IGNORECASE),
    )


@functools.lru_cache(maxsize=1024)
def _word_pattern(word: str) -> re.Pattern[str]:
    """A case-insensitive whole-word regex for a (possibly multi-word) vocabulary entry."""
    words = r"[\s-]+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<![\w-]){words}(?![\w-])", re.IGNORECASE)


def _owner_and_item(phrase: str) -> tuple[str, str | None]:
    """("Competitor X", "Pro tier") from "Competitor X's Pro tier" or "the Pro tier of ..."."""
    parts = _POSSESSIVE.split(phrase.strip())
    if len(parts) >= 2 and all(part.strip() for part in parts):
        # "A's B's C": the owner is A, the item is "B C" (a price of A's B's C belongs to A)
        return parts[0].strip(), " ".join(part.strip() for part in parts[1:])
    of = re.match(r"^(?:the\s+)?(?P<item>.+?)\s+of\s+(?P<owner>.+)$", phrase.strip(), re.IGNORECASE)
    if of is not None:
        return of["owner"], of["item"]
    return phrase, None


def _noun_phrase(phrase: str, max_words: int) -> str | None:
    """`phrase` without a leading article or time, if it reads as a short noun phrase; else None."""
    text = _DETERMINER.sub("", _strip_time(phrase.strip()))
    words = text.split()
    if not words or len(words) > max_words or _POSSESSIVE.search(_QUOTED_SPAN.sub("", text)):
        return None
    lowered = [word.strip(_QUOTES + ",").lower() for word in words]
    if len(lowered) == 1 and lowered[0] in _NOT_NAMES:
        return None
    if any(word in _CLAUSE_WORDS for word in lowered):
        return None
    return text


def _phrase(phrase: str) -> str | None:
    """An attribute or value phrase: articles and trailing time dropped, at most 16 words."""
    text = _DETERMINER.sub("", _strip_time(phrase.strip())).strip(" ,")
    words = text.split()
    if not words or len(words) > _MAX_PHRASE_WORDS:
        return None
    if any(word.strip(_QUOTES + ",").lower() in _CLAUSE_WORDS - {"and", "or"} for word in words):
        return None
    return text


def _strip_time(text: str) -> str:
    """`text` without trailing time qualifiers ("raised in Q2 2024" → "raised")."""
    previous = None
    while previous != text:
        previous, text = text, _TIME_TAIL.sub("", text).strip()
    return text


def _unquote(text: str) -> str:
    """`text` without surrounding quotes."""
    text = text.strip()
    while len(text) > 1 and text[0] in _QUOTES and text[-1] == text[0]:
        text = text[1:-1].strip()
    return text.strip(_QUOTES).strip()


def _squash(text: str) -> str:
    """Single-spaced text."""
    return " ".join(text.split())


def _singular(phrase: str) -> str:
    """A simple singular of the last word ("prices" → "price", "sales" stays)."""
    if _NO_PLURAL.search(phrase.lower()):
        return phrase
    if phrase.lower().endswith("ies") and len(phrase) > 4:
        return phrase[:-3] + "y"
    if phrase.lower().endswith("s") and len(phrase) > 3:
        return phrase[:-1]
    return phrase


# ------------------------------------------------------------------------------ keys


def _key(
    context: _Context, type_name: str, phrase: str, suffix: str = ""
) -> tuple[str, Cardinality]:
    """(key, cardinality) for `phrase` on `type_name`: a matching AttributeSpec, else its slug."""
    normal = _normal(_KEY_ADJECTIVE.sub("", phrase.strip()))
    entity_type = context.named(type_name)
    candidates = (normal, _normal(_singular(normal)))
    for spec in entity_type.attributes if entity_type else ():
        names = {_normal(spec.key.replace("_", " ")), *(_normal(s) for s in spec.synonyms)}
        if any(candidate in names for candidate in candidates):
            if suffix:
                return _slug_key(spec.key, suffix), "single"
            return spec.key, spec.cardinality
    return _slug_key(normal, suffix), "single"


def _preference_key(context: _Context, type_name: str, verb: str) -> str:
    """The key a preference verb sets: the type's attribute naming the verb, else top_priority."""
    entity_type = context.named(type_name)
    stem = _verb_stem(verb)
    for spec in entity_type.attributes if entity_type else ():
        if any(_verb_stem(synonym) == stem for synonym in spec.synonyms):
            return spec.key
    return "top_priority"


def _verb_stem(verb: str) -> str:
    """A crude stem so "prioritised", "prioritizes" and "prioritise" compare equal."""
    text = _normal(verb).replace("iz", "is").replace("favour", "favor")
    text = re.sub(r"\bcare[sd]?\b", "care", text)
    text = re.sub(r"rred$", "r", text)
    return re.sub(r"(?:es|ed|e|s|d)$", "", text)


def _normal(text: str) -> str:
    """Lower case, single spaces."""
    return " ".join(text.lower().split())


def _slug_key(text: str, suffix: str = "") -> str:
    """A valid attribute key: slug(text) + suffix, at most 64 characters, starting with a letter."""
    base = slug(text)
    if not base[0].isalpha():
        base = f"n_{base}"  # keys must start with a letter ("2024 plan" → n_2024_plan)
    return base[: 64 - len(suffix)].rstrip("_") + suffix
