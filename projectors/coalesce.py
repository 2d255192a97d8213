"""Coalescing: a run of one projector statement, sent as few statements with the same effect.

Projectors emit one statement per event. Sent one by one, each costs the client more than the
server (adapting, sending, a result to consume): at replay speed psycopg's per-statement work was
the largest share of applying. A run of the *same* statement text can be sent with less:

* `INSERT ... VALUES (%s, ...) ON CONFLICT [(...)] DO NOTHING` with no RETURNING becomes one
  multi-row INSERT per chunk. Postgres inserts the rows of a multi-row VALUES in order, each one
  checked against the rows already there, including those the same statement inserted, and DO
  NOTHING skips a conflicting row exactly as its own statement would have: the same rows result,
  in the same order. (DO UPDATE is not coalesced: a multi-row one refuses to touch a row twice.)
* any other statement without results is sent with `executemany`: the same statements, in the
  same order, only without a wait per statement.

The statement text stays the projector's, so each event's effect keeps one definition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Postgres takes at most 65,535 parameters per statement; chunks stay well under it
MAX_PARAMETERS = 30_000
MAX_ROWS = 1_000

_DEFERRABLE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_VALUES_DO_NOTHING = re.compile(
    r"^(?P<head>\s*INSERT\s+INTO\s.*?\bVALUES\s*)"
    r"(?P<row>\(\s*%s(?:\s*,\s*%s)*\s*\))"
    r"(?P<tail>\s*ON\s+CONFLICT(?:\s*\([^()]*\))?\s+DO\s+NOTHING\s*)$",
    re.IGNORECASE | re.DOTALL,
)


@lru_cache(maxsize=1024)
def without_result(query: str) -> bool:
    """Whether a statement only changes rows and returns none, so it can wait to be sent."""
    return bool(_DEFERRABLE.match(query)) and not _RETURNING.search(query)


@dataclass(frozen=True, slots=True)
class MultiRowInsert:
    """A single-row `INSERT ... VALUES (...) ON CONFLICT DO NOTHING`, split around its row."""

    head: str
    row: str
    tail: str
    width: int  # parameters per row

    def rows_per_statement(self) -> int:
        """How many rows one coalesced statement carries."""
        return max(1, min(MAX_ROWS, MAX_PARAMETERS // self.width))

    def statement(self, rows: int) -> str:
        """The statement inserting `rows` rows, with numbered ($n) parameters."""
        return _numbered(self.head, self.row, self.tail, rows)


@lru_cache(maxsize=1024)
def _numbered(head: str, row: str, tail: str, rows: int) -> str:
    # numbered parameters, sent as they are (psycopg's raw cursor): psycopg parses a statement
    # with %s on every execute once it is longer than its cache takes, and these are long
    width = row.count("%s")
    pieces = row.split("%s")
    values = []
    for n in range(rows):
        first = n * width + 1
        numbered = [f"{piece}${first + k}" for k, piece in enumerate(pieces[:-1])]
        values.append("".join(numbered) + pieces[-1])
    return head + ", ".join(values) + tail


@lru_cache(maxsize=256)
def multi_row_insert(query: str) -> MultiRowInsert | None:
    """The statement's multi-row form, or None if a run of it cannot become one statement."""
    found = _VALUES_DO_NOTHING.match(query)
    # no other placeholder or literal % (psycopg's %% escape) may sit around the row
    if found is None or "%" in found["head"] + found["tail"] or "$" in query:
        return None
    return MultiRowInsert(found["head"], found["row"], found["tail"], found["row"].count("%s"))


def coalesced(query: str, run: Sequence[Sequence[Any]]) -> list[tuple[str, list[Any]]] | None:
    """A run of `query`'s parameter rows as multi-row statements ($n parameters), in order.

    None if the statement has no multi-row form.
    """
    form = multi_row_insert(query)
    if form is None:
        return None
    size = form.rows_per_statement()
    statements = []
    for start in range(0, len(run), size):
        chunk = run[start : start + size]
        if any(len(row) != form.width for row in chunk):
            raise ValueError(f"a row of {len(chunk[0])} values for {form.width} placeholders")
        statements.append((form.statement(len(chunk)), [value for row in chunk for value in row]))
    return statements
