"""What `as_of` may be (a time or a log position) and how it becomes a log time."""

from __future__ import annotations

from datetime import UTC, datetime

from spectron.errors import InvalidInput
from spectron.events import LogPosition
from spectron.log import EventLog

AsOf = datetime | str | LogPosition | None


async def resolve_as_of(as_of: AsOf, log: EventLog) -> datetime | None:
    """The log time an as-of query reads at; a position means the time its record was logged."""
    if as_of is None:
        return None
    if isinstance(as_of, LogPosition):
        partition, offset = as_of
        if not 0 <= partition < log.partitions or offset < 0:
            raise InvalidInput(f"as_of position {tuple(as_of)} is outside the log")
        records = await log.read(partition, offset, 1)
        if not records or records[0].position.offset != offset:
            raise InvalidInput(f"as_of position {tuple(as_of)} has no record")
        return records[0].recorded_at
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(f"as_of {as_of!r} is not an ISO 8601 time") from exc
    if not isinstance(as_of, datetime):
        raise InvalidInput("as_of must be a datetime, an ISO 8601 string or a LogPosition")
    if as_of.tzinfo is None:
        raise InvalidInput("as_of needs a time zone (e.g. 2026-11-20T10:00:00Z)")
    if as_of.year < 1970:
        raise InvalidInput("as_of is before the epoch")
    return as_of.astimezone(UTC)


def as_of_from_text(text: str | None) -> AsOf:
    """as_of as a query parameter: 'partition:offset' is a log position, anything else a time."""
    if text is not None and text.count(":") == 1 and all(p.isdigit() for p in text.split(":")):
        partition, offset = text.split(":")
        return LogPosition(int(partition), int(offset))
    return text
