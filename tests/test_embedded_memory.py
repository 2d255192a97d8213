"""The embedded Postgres sizes its cache to the host, once, and keeps a size someone chose."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from spectron.embedded import (
    SHARED_BUFFERS_MAX,
    SHARED_BUFFERS_MIN,
    EmbeddedPostgres,
    shared_buffers_for,
)
from spectron.host import physical_memory
from tests.fault_support import fresh_home


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh Spectron home (see fresh_home)."""
    with fresh_home() as path:
        yield path


def _shared_buffers(uri: str) -> int:
    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_cache_is_an_eighth_of_the_host_within_bounds() -> None:
    assert shared_buffers_for(None) == SHARED_BUFFERS_MIN
    assert shared_buffers_for(512 << 20) == SHARED_BUFFERS_MIN
    assert shared_buffers_for(16 << 30) == 2 << 30
    assert shared_buffers_for(256 << 30) == SHARED_BUFFERS_MAX


async def test_a_new_home_starts_with_the_hosts_cache_and_keeps_a_chosen_one(home: Path) -> None:
    server = await asyncio.to_thread(EmbeddedPostgres, home)
    try:
        # applied at once: the server was restarted right after its home was created
        assert _shared_buffers(server.uri) == shared_buffers_for(physical_memory())
        with psycopg.connect(server.uri, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '64MB'")  # an operator's choice
    finally:
        await asyncio.to_thread(server.close)
    again = await asyncio.to_thread(EmbeddedPostgres, home)
    try:
        assert _shared_buffers(again.uri) == 64 << 20
    finally:
        await asyncio.to_thread(again.close)
