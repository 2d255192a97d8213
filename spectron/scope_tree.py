"""The scope tree: every scope holding memories visible from a scope, with counts, nested by containment.

A node's parent is the most specific other listed scope it lies within; scopes holding no memory
themselves (e.g. {org} above {org, project}) are not invented, so every node is a real scope.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from spectron.recall import visibility_params, visible
from spectron.scope import Scope, is_within

_COUNTS = f"""
SELECT m.scope_key, m.scope, m.memory_category, m.principal, count(*) FROM memories m
WHERE {visible("m")} AND (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
GROUP BY 1, 2, 3, 4
"""
# an empty floor (an unrestricted key) sees every scope
_ALL_COUNTS = """
SELECT m.scope_key, m.scope, m.memory_category, m.principal, count(*) FROM memories m
WHERE (%(as_of)s::timestamptz IS NULL OR m.recorded_at <= %(as_of)s)
GROUP BY 1, 2, 3, 4
"""


class ScopeNode(BaseModel):
    """One scope that holds memories: how many, of which categories, by whom, and its parent."""

    model_config = ConfigDict(frozen=True)

    scope: dict[str, str]
    key: str = Field(description="The scope's canonical key (compact JSON, sorted keys).")
    parent: str | None = Field(description="Key of the nearest listed scope containing this one.")
    memories: int = Field(description="Memories at exactly this scope.")
    by_category: dict[str, int]
    by_principal: dict[str, int]


class ScopeTree(BaseModel):
    """The scopes visible from `root` (the key's floor, `{}` for any), broadest first."""

    model_config = ConfigDict(frozen=True)

    root: dict[str, str]
    nodes: list[ScopeNode]


async def scope_tree(
    conn: AsyncConnection[Any], root: Scope, as_of: datetime | None = None
) -> ScopeTree:
    """Every scope with memories visible from `root` (all scopes when `root` is empty)."""
    if root:
        cur = await conn.execute(_COUNTS, {**visibility_params(root), "as_of": as_of})
    else:
        cur = await conn.execute(_ALL_COUNTS, {"as_of": as_of})
    scopes: dict[str, Scope] = {}
    categories: dict[str, dict[str, int]] = defaultdict(dict)
    principals: dict[str, dict[str, int]] = defaultdict(dict)
    for key, scope, category, principal, count in await cur.fetchall():
        scopes[key] = dict(scope)
        categories[key][category] = categories[key].get(category, 0) + count
        principals[key][principal] = principals[key].get(principal, 0) + count
    ordered = sorted(scopes, key=lambda k: (len(scopes[k]), k))
    nodes = []
    for key in ordered:
        scope = scopes[key]
        above = [k for k in ordered if k != key and is_within(scope, scopes[k])]
        parent = max(above, key=lambda k: len(scopes[k])) if above else None
        nodes.append(
            ScopeNode(
                scope=scope,
                key=key,
                parent=parent,
                memories=sum(categories[key].values()),
                by_category=dict(sorted(categories[key].items())),
                by_principal=dict(sorted(principals[key].items())),
            )
        )
    return ScopeTree(root=root, nodes=nodes)
