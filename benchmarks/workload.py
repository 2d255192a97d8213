"""Synthetic workload: a 3-level scope tree (org → project → agent) and memory/query text."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from spectron.scope import Scope

_ONSETS = ["b", "k", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_TEMPLATES = [
    "{agent} noted that {a} {b} rose {n}% after the {c} review in {month}; next step: {d} {e}.",
    "Customer call: the {a} team wants {b} {c} before {month}, budget about ${n}k, owner {agent}.",
    "{agent} found a bug in {a} {b}: {c} fails when {d} exceeds {n}; workaround is {e}.",
    "Decision ({month}): we keep {a} and drop {b}; {c} {d} moves to the {e} backlog ({n} votes).",
    "Research summary by {agent}: {a} {b} correlates with {c} (n={n}); {d} {e} needs follow-up.",
]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September"]


def vocabulary(size: int, seed: int = 7) -> list[str]:
    """`size` distinct pronounceable pseudo-words (deterministic)."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = int(rng.integers(2, 5))
        word = "".join(
            _ONSETS[int(rng.integers(len(_ONSETS)))] + _VOWELS[int(rng.integers(len(_VOWELS)))]
            for _ in range(syllables)
        )
        words.setdefault(word, None)
    return list(words)


@dataclass(frozen=True)
class ScopeTree:
    """One org, `projects` projects, `agents` agents per project."""

    projects: int
    agents: int
    org: str = "acme"

    @property
    def org_scope(self) -> Scope:
        """The root: sees every memory of the tree."""
        return {"org": self.org}

    @property
    def project_scopes(self) -> list[Scope]:
        """Middle level."""
        return [{"org": self.org, "project": f"p{p:02d}"} for p in range(self.projects)]

    @property
    def leaf_scopes(self) -> list[Scope]:
        """Agents: the leaves."""
        return [
            {"org": self.org, "project": f"p{p:02d}", "agent": f"a{a:02d}"}
            for p, a in itertools.product(range(self.projects), range(self.agents))
        ]

    @property
    def all_scopes(self) -> list[Scope]:
        """Every scope of the tree (org, projects, leaves)."""
        return [self.org_scope, *self.project_scopes, *self.leaf_scopes]

    def scope_for(self, index: int) -> Scope:
        """Where memory number `index` is written: 80% leaves, 15% projects, 5% the org."""
        bucket = index % 20
        if bucket == 0:
            return self.org_scope
        if bucket <= 3:
            return self.project_scopes[(index // 20) % self.projects]
        leaves = self.leaf_scopes
        return leaves[(index * 7919) % len(leaves)]


class TextGenerator:
    """Deterministic memory texts and queries over a Zipf-distributed pseudo-word vocabulary."""

    def __init__(self, vocabulary_size: int = 5000, seed: int = 11) -> None:
        self.words = vocabulary(vocabulary_size)
        ranks = np.arange(1, len(self.words) + 1, dtype=np.float64)
        weights = 1.0 / ranks**1.1
        self._p = weights / weights.sum()
        self._seed = seed

    def _pick(self, rng: np.random.Generator, count: int) -> list[str]:
        return [self.words[int(i)] for i in rng.choice(len(self.words), size=count, p=self._p)]

    def memory(self, index: int) -> str:
        """The text of memory number `index` (same index, same text)."""
        rng = np.random.default_rng((self._seed, index))
        a, b, c, d, e = self._pick(rng, 5)
        template = _TEMPLATES[index % len(_TEMPLATES)]
        return template.format(
            agent=f"agent-{index % 97}",
            a=a,
            b=b,
            c=c,
            d=d,
            e=e,
            n=int(rng.integers(2, 500)),
            month=_MONTHS[index % len(_MONTHS)],
        )

    def queries(self, count: int, seed: int = 3) -> list[str]:
        """`count` distinct 2-4 word queries."""
        rng = np.random.default_rng((self._seed, seed, 1))
        out: dict[str, None] = {}
        while len(out) < count:
            words = self._pick(rng, int(rng.integers(2, 5)))
            out.setdefault(" ".join(words), None)
        return list(out)
