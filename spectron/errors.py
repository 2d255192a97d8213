"""Typed exceptions. Each carries a stable `type` slug, used as the RFC 9457 problem type over HTTP."""

from __future__ import annotations


class SpectronError(Exception):
    """Base class of every error Spectron raises on purpose."""

    type: str = "spectron-error"
    status: int = 500


class InvalidInput(SpectronError, ValueError):
    """The caller's input was rejected before anything was appended."""

    type = "invalid-input"
    status = 422


class InvalidScope(InvalidInput):
    """A scope is not a non-empty dict of printable string values."""

    type = "invalid-scope"


class InvalidContent(InvalidInput):
    """Memory content is empty, not text, or too large."""

    type = "invalid-content"


class InvalidCategory(InvalidInput):
    """A memory category outside the documented set."""

    type = "invalid-category"


class InvalidMetadata(InvalidInput):
    """Metadata that is not a JSON object of bounded size and depth."""

    type = "invalid-metadata"


class InvalidFacts(InvalidInput):
    """Caller-given facts that do not fit the entity/attribute/relation shapes."""

    type = "invalid-facts"


class ReadYourWritesTimeout(SpectronError, TimeoutError):
    """Projections did not catch up with the log within the read-your-writes bound."""

    type = "read-your-writes-timeout"
    status = 504


class SessionClosed(SpectronError):
    """An operation on a session after it was closed."""

    type = "session-closed"
    status = 409


class LogUnavailable(SpectronError):
    """The event log could not be reached or refused the append."""

    type = "log-unavailable"
    status = 503


class MalformedEvent(SpectronError):
    """Bytes read from the log that are not a valid Spectron event (dead-lettered, never applied)."""

    type = "malformed-event"
    status = 500


class RerankerUnavailable(SpectronError):
    """The reranking endpoint failed, timed out or answered something that is not scores."""

    type = "reranker-unavailable"
    status = 503


class EmbedderUnavailable(SpectronError):
    """The embedding model failed, timed out or answered something that is not embeddings."""

    type = "embedder-unavailable"
    status = 503


class ContentForgotten(SpectronError):
    """The memory was forgotten: its key is destroyed, so its content cannot be read or extended."""

    type = "content-forgotten"
    status = 410


class MemoryNotFound(SpectronError, LookupError):
    """No memory with that id is at or below the session's scope."""

    type = "memory-not-found"
    status = 404
