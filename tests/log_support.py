"""Reading the log back in tests: records as stored are sealed, so open them with their keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from spectron.log import RawRecord
from spectron.sealing import unseal


async def opened(pool: AsyncConnectionPool[Any], records: Sequence[RawRecord]) -> list[RawRecord]:
    """The records with their payloads decrypted (forgotten ones marked), ready to decode."""
    async with pool.connection() as conn:
        return await unseal(conn, records)
