"""What the event log hands out: a record's bytes as stored, and the acknowledgement of an append.

Plain data shared by the log port (spectron.log), its adapters, sealing and the drivers. It lives
outside spectron.log so that modules the adapters build on (spectron.sealing) need not import the
log package they serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spectron.events import LogPosition


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as the log holds it: bytes not yet decoded, so poison can be dead-lettered."""

    position: LogPosition
    recorded_at: datetime
    key: bytes | None
    value: bytes
    forgotten: bool = False  # its memory's key is destroyed (spectron.sealing.unseal)
    fault: str | None = None  # why unsealing failed: decoding dead-letters it with this reason


@dataclass(frozen=True, slots=True)
class Appended:
    """Acknowledgement of one appended event."""

    position: LogPosition
    recorded_at: datetime


__all__ = ["Appended", "RawRecord"]
