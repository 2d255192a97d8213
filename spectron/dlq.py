"""Dead letters: records the projections could not decode, kept with why, for an operator.

A poison record (another producer's bytes that are not a valid event) is stored by
`projectors.driver.apply_records` in the projection's `dead_letters` table with its position, log
time, the reason and the raw bytes; projection moves on. This module owns that table: listing,
counting, and the statements with which `projectors.dead_letters.retry_dead_letters` revives a
dead letter after an upgrade that makes its bytes decodable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg_pool import AsyncConnectionPool

from spectron.events import LogPosition

_COLUMNS = 'consumer, partition, "offset", recorded_at, reason, value'


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record a consumer could not decode: where it sits in the log, why, and its bytes."""

    consumer: str
    partition: int
    offset: int
    recorded_at: datetime
    reason: str
    value: bytes

    @property
    def position(self) -> LogPosition:
        """The record's position in the log."""
        return LogPosition(self.partition, self.offset)

    def preview(self, width: int = 60) -> str:
        """The first bytes of the record, printable (a repr of what does not decode as UTF-8)."""
        head = self.value[:width]
        try:
            text = head.decode()
        except UnicodeDecodeError:
            text = repr(head)[2:-1]
        text = text.encode("unicode_escape").decode() if not text.isprintable() else text
        return text + ("…" if len(self.value) > width else "")


@dataclass
class RetryReport:
    """What a retry did: positions revived (applied, dead letter deleted) and positions kept."""

    revived: list[LogPosition] = field(default_factory=list)
    kept: dict[LogPosition, str] = field(default_factory=dict)
    missing: list[LogPosition] = field(default_factory=list)


def _row(row: Sequence[Any]) -> DeadLetter:
    consumer, partition, offset, recorded_at, reason, value = row
    return DeadLetter(
        str(consumer), int(partition), int(offset), recorded_at, str(reason), bytes(value)
    )


async def count_dead_letters(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> int:
    """How many dead letters the projection holds."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM dead_letters")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def list_dead_letters(
    pool: AsyncConnectionPool[AsyncConnection[Any]], limit: int = 100
) -> list[DeadLetter]:
    """The first `limit` dead letters in log order (partition, offset)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f'SELECT {_COLUMNS} FROM dead_letters ORDER BY partition, "offset", consumer LIMIT %s',
            [limit],
        )
        return [_row(row) for row in await cur.fetchall()]


async def dead_letter_positions(conn: AsyncConnection[Any], consumer: str) -> list[LogPosition]:
    """Where a consumer's dead letters sit, in log order."""
    cur = await conn.execute(
        'SELECT partition, "offset" FROM dead_letters WHERE consumer = %s'
        ' ORDER BY partition, "offset"',
        [consumer],
    )
    return [LogPosition(int(p), int(o)) for p, o in await cur.fetchall()]


async def lock_dead_letter(
    cur: AsyncCursor[Any], consumer: str, position: LogPosition
) -> DeadLetter | None:
    """In the caller's transaction: lock a consumer's dead letter at `position`; None if none."""
    await cur.execute(
        f"SELECT {_COLUMNS} FROM dead_letters"
        ' WHERE consumer = %s AND partition = %s AND "offset" = %s FOR UPDATE',
        [consumer, *position],
    )
    row = await cur.fetchone()
    return None if row is None else _row(row)


async def set_dead_letter_reason(cur: AsyncCursor[Any], letter: DeadLetter, reason: str) -> None:
    """Record why a dead letter is still dead."""
    await cur.execute(
        "UPDATE dead_letters SET reason = %s"
        ' WHERE consumer = %s AND partition = %s AND "offset" = %s',
        [reason, letter.consumer, letter.partition, letter.offset],
    )


async def delete_dead_letter(
    conn: AsyncConnection[Any] | AsyncCursor[Any], letter: DeadLetter
) -> None:
    """Delete a revived dead letter (in the transaction that applied it, where there is one)."""
    await conn.execute(
        'DELETE FROM dead_letters WHERE consumer = %s AND partition = %s AND "offset" = %s',
        [letter.consumer, letter.partition, letter.offset],
    )
