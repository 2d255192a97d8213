"""Every error Spectron raises on purpose, in one tree, and the one table that maps it to HTTP.

    SpectronError
    ├── InvalidInput (ValueError) ......... the caller's input; nothing was appended
    │   ├── InvalidScope
    │   ├── InvalidContent
    │   ├── InvalidCategory
    │   ├── InvalidMetadata
    │   ├── InvalidFacts
    │   └── InvalidRequest ................ HTTP: the body or query does not fit the schema
    ├── Unauthenticated ................... HTTP: no API key, an unknown or a revoked one
    ├── Forbidden ......................... the key may not do this
    │   ├── ScopeOutsideFloor
    │   └── MissingCapability
    ├── NotFound (LookupError)
    │   ├── SessionNotFound
    │   ├── KeyNotFound
    │   └── MemoryNotFound
    ├── ContentForgotten .................. crypto-shredded: the content is gone for good
    ├── SessionClosed
    ├── TooManySessions
    ├── MethodNotAllowed · MalformedJson · UnsupportedMediaType · PayloadTooLarge   (HTTP)
    ├── ProjectionModelMismatch ........... the projection indexes another embedding model
    ├── ReadYourWritesTimeout (TimeoutError)
    ├── LogUnavailable .................... transient (Retry-After)
    ├── StoreUnavailable .................. the database is down or restarting (Retry-After)
    ├── StoreMisconfigured ................ no store where one is read, or one it cannot set up
    ├── EmbedderUnavailable
    ├── RerankerUnavailable ............... an opt-in reranker failed (recall keeps its own order)
    ├── ServerUnavailable ................. the HTTP client could not reach a Spectron server
    ├── LLMError .......................... a language model was down or answered garbage
    ├── ExtractionFailed .................. the extractor produced no valid facts
    ├── MalformedEvent .................... bytes on the log that are no Spectron event
    └── ChainGap (ValueError) ............. a hash chain asked to vouch for a hole

Each error's RFC 9457 problem type (a stable slug) and HTTP status come from PROBLEM_TYPES below,
the one place they are decided; `spectron.http.problems` renders them.
"""

from __future__ import annotations


class SpectronError(Exception):
    """Base class of every error Spectron raises on purpose."""

    # set from PROBLEM_TYPES for every class; an instance rebuilt from an unknown problem
    # (spectron.http.problems.error_from_problem) carries its own
    type: str
    status: int
    retry_after: float | None = None  # seconds: the error is transient; try again after that


class InvalidInput(SpectronError, ValueError):
    """The caller's input was rejected before anything was appended."""


class InvalidScope(InvalidInput):
    """A scope is not a non-empty dict of printable string values."""


class InvalidContent(InvalidInput):
    """Memory content is empty, not text, or too large."""


class InvalidCategory(InvalidInput):
    """A memory category outside the documented set."""


class InvalidMetadata(InvalidInput):
    """Metadata that is not a JSON object of bounded size and depth."""


class InvalidFacts(InvalidInput):
    """Caller-given facts that do not fit the entity/attribute/relation shapes."""


class InvalidRequest(InvalidInput):
    """The body or query does not match the operation's schema (types, ranges, unknown fields)."""


class Unauthenticated(SpectronError):
    """No API key, an unknown one, or a revoked one."""


class Forbidden(SpectronError):
    """The API key is valid but may not do this."""


class ScopeOutsideFloor(Forbidden):
    """The scope does not contain the API key's scope floor."""


class MissingCapability(Forbidden):
    """The API key lacks the capability (read, write, forget, admin) the operation needs."""


class NotFound(SpectronError, LookupError):
    """No such resource."""


class SessionNotFound(NotFound):
    """No open session with that id for this API key (never opened, closed, expired, or another key's)."""


class KeyNotFound(NotFound):
    """No API key with that id that the caller manages."""


class MemoryNotFound(NotFound):
    """No memory with that id is at or below the session's scope."""


class ContentForgotten(SpectronError):
    """The memory was forgotten: its key is destroyed, so its content cannot be read or extended."""


class SessionClosed(SpectronError):
    """An operation on a session after it was closed."""


class TooManySessions(SpectronError):
    """The key already holds as many open sessions as it may: close some (DELETE) or let them idle out."""


class MethodNotAllowed(SpectronError):
    """The resource exists but not with this HTTP method."""


class MalformedJson(SpectronError):
    """The body is not one JSON document in UTF-8 (or nests deeper than the parser allows)."""


class UnsupportedMediaType(SpectronError):
    """The body is not sent as application/json."""


class PayloadTooLarge(SpectronError):
    """The body is larger than the server accepts."""


class ProjectionModelMismatch(SpectronError):
    """The projection indexes another embedding model than the one configured."""


class ReadYourWritesTimeout(SpectronError, TimeoutError):
    """Projections did not catch up with the log within the read-your-writes bound."""


class LogUnavailable(SpectronError):
    """The event log could not be reached or refused the append."""

    retry_after = 1.0


class StoreUnavailable(SpectronError):
    """The database is down or restarting: nothing was done; try again after `retry_after` s."""

    retry_after = 1.0


class StoreMisconfigured(SpectronError):
    """No store where one is to be read, a home that cannot hold one, or a database lacking an
    extension that this role may not create: nothing a retry mends."""


class EmbedderUnavailable(SpectronError):
    """The embedding model failed, timed out or answered something that is not embeddings."""


class RerankerUnavailable(SpectronError):
    """The reranking endpoint failed, timed out or answered something that is not scores."""


class ServerUnavailable(SpectronError):
    """The Spectron server could not be reached, or answered something that is not Spectron's."""


class LLMError(SpectronError):
    """The language model could not be reached, timed out, or answered something that is not JSON."""


class ExtractionFailed(SpectronError):
    """The extractor could not produce valid facts (model down, timeout, malformed or hostile answer)."""


class MalformedEvent(SpectronError):
    """Bytes read from the log that are not a valid Spectron event (dead-lettered, never applied)."""


class ChainGap(SpectronError, ValueError):
    """Records handed to a hash chainer do not continue its head densely."""


# error → (problem type slug, HTTP status). A subclass not listed inherits its parent's.
PROBLEM_TYPES: dict[type[SpectronError], tuple[str, int]] = {
    SpectronError: ("spectron-error", 500),
    InvalidInput: ("invalid-input", 422),
    InvalidScope: ("invalid-scope", 422),
    InvalidContent: ("invalid-content", 422),
    InvalidCategory: ("invalid-category", 422),
    InvalidMetadata: ("invalid-metadata", 422),
    InvalidFacts: ("invalid-facts", 422),
    InvalidRequest: ("invalid-request", 422),
    Unauthenticated: ("unauthenticated", 401),
    Forbidden: ("forbidden", 403),
    ScopeOutsideFloor: ("scope-outside-floor", 403),
    MissingCapability: ("missing-capability", 403),
    NotFound: ("not-found", 404),
    SessionNotFound: ("session-not-found", 404),
    KeyNotFound: ("key-not-found", 404),
    MemoryNotFound: ("memory-not-found", 404),
    MethodNotAllowed: ("method-not-allowed", 405),
    SessionClosed: ("session-closed", 409),
    ProjectionModelMismatch: ("projection-model-mismatch", 409),
    ContentForgotten: ("content-forgotten", 410),
    PayloadTooLarge: ("payload-too-large", 413),
    UnsupportedMediaType: ("unsupported-media-type", 415),
    TooManySessions: ("too-many-sessions", 429),
    MalformedJson: ("malformed-json", 400),
    MalformedEvent: ("malformed-event", 500),
    StoreMisconfigured: ("store-misconfigured", 500),
    ChainGap: ("chain-gap", 500),
    LLMError: ("llm-unavailable", 502),
    ExtractionFailed: ("extraction-failed", 502),
    LogUnavailable: ("log-unavailable", 503),
    StoreUnavailable: ("store-unavailable", 503),
    EmbedderUnavailable: ("embedder-unavailable", 503),
    RerankerUnavailable: ("reranker-unavailable", 503),
    ServerUnavailable: ("server-unavailable", 503),
    ReadYourWritesTimeout: ("read-your-writes-timeout", 504),
}


def _assign_problem_types() -> None:
    for cls, (slug, status) in PROBLEM_TYPES.items():
        cls.type, cls.status = slug, status


_assign_problem_types()
