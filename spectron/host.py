"""What this host has: sizes that server settings are chosen from."""

from __future__ import annotations

import os


def physical_memory() -> int | None:
    """This host's physical memory in bytes, if the platform says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
