"""The supersession rule, as one pure function used by the projector and by as-of reads."""

from __future__ import annotations

from collections.abc import Sequence


def successors(values: Sequence[str]) -> list[int | None]:
    """For a chain in log order, the index of the value that supersedes each one (None: current).

    A value is superseded by the first later value that differs from it; a repeat of the value
    right before it is a corroboration and shares that value's fate.
    """
    out: list[int | None] = [None] * len(values)
    for i in range(len(values) - 2, -1, -1):
        out[i] = i + 1 if values[i + 1] != values[i] else out[i + 1]
    return out
