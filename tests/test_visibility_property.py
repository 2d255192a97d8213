"""DESIGN rule 1 checked in SQL against a brute-force reference over random scope trees."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectron.scope import ancestor_keys, canonical_scope, is_visible, scope_key

DIMENSIONS = ("org", "project", "team", "agent")


def reference_visible(memory: dict[str, str], query: dict[str, str]) -> bool:
    """Brute force: one scope's items are all in the other's."""
    m, q = set(memory.items()), set(query.items())
    return m <= q or q <= m


# a random scope tree: each node extends its parent by one dimension
scope_trees = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=len(DIMENSIONS)),
        st.lists(st.sampled_from(["a", "b", "c"]), min_size=4, max_size=4),
    ),
    min_size=2,
    max_size=10,
)


def scopes_of(tree: list[tuple[int, list[str]]], org: str) -> list[dict[str, str]]:
    out = []
    for depth, values in tree:
        scope = {"org": org}
        for dim, value in zip(DIMENSIONS[1:depth], values, strict=False):
            scope[dim] = value
        out.append(canonical_scope(scope))
    return out


@given(scope_trees, scope_trees)
def test_is_visible_matches_reference(tree_a, tree_b) -> None:
    for m in scopes_of(tree_a, "o"):
        for q in scopes_of(tree_b, "o"):
            assert is_visible(m, q) == reference_visible(m, q)


@given(st.dictionaries(st.sampled_from(DIMENSIONS), st.sampled_from(["x", "y"]), min_size=1))
def test_ancestor_keys_are_exactly_the_subsets(scope) -> None:
    scope = canonical_scope(scope)
    assert len(ancestor_keys(scope)) == 2 ** len(scope) - 1
    assert scope_key(scope) in ancestor_keys(scope)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tree=scope_trees)
async def test_recall_visibility_equals_reference(make_client, tree) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"  # each example gets its own corner of the shared database
    scopes = {scope_key(s): s for s in scopes_of(tree, org)}
    async with make_client(
        extractor="none"
    ) as client:  # closed per example: connections are finite
        for key, scope in scopes.items():
            async with client.sessions.create(scope=scope) as session:
                await session.remember(f"marker note written at {key}")
        for scope in scopes.values():
            async with client.sessions.create(scope=scope) as session:
                result = await session.recall("marker note", top_k=100, mode="keyword")
            got = {scope_key(item.scope) for item in result.items}
            want = {k for k, m in scopes.items() if reference_visible(m, scope)}
            assert got == want
