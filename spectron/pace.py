"""How fast an enrichment pass moves through the log, so a reader can tell whether to wait for it.

The embedded enrichment tailer (projectors.tailer) measures it; a strong read (spectron.consistency)
asks whether the pass can still reach the writes it owes within its bound.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pace:
    """How long an enrichment pass takes per log record it moves past (a moving average).

    Readers use it to tell whether its output can still arrive within their bound.
    """

    seconds_per_record: float | None = None

    def record(self, records: int, seconds: float) -> None:
        """Fold in one batch: `records` moved past in `seconds`."""
        if records > 0:
            sample = seconds / records
            last = self.seconds_per_record
            self.seconds_per_record = sample if last is None else 0.7 * last + 0.3 * sample
