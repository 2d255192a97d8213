"""RFC 9457 problem details: the errors only HTTP has, and the mapping between slugs and exceptions."""

from __future__ import annotations

from typing import Any

from spectron.errors import InvalidInput, SpectronError

PROBLEM_BASE = "https://spectron.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Unauthenticated(SpectronError):
    """No API key, an unknown one, or a revoked one."""

    type = "unauthenticated"
    status = 401


class Forbidden(SpectronError):
    """The API key is valid but may not do this."""

    type = "forbidden"
    status = 403


class ScopeOutsideFloor(Forbidden):
    """The scope does not contain the API key's scope floor."""

    type = "scope-outside-floor"


class MissingCapability(Forbidden):
    """The API key lacks the capability (read, write, forget, admin) the operation needs."""

    type = "missing-capability"


class NotFound(SpectronError):
    """No such resource."""

    type = "not-found"
    status = 404


class SessionNotFound(NotFound):
    """No open session with that id for this API key (never opened, closed, or another key's)."""

    type = "session-not-found"


class KeyNotFound(NotFound):
    """No API key with that id (within the caller's floor)."""

    type = "key-not-found"


class TooManySessions(SpectronError):
    """The key already holds as many open sessions as it may: close some (DELETE) or let them idle out."""

    type = "too-many-sessions"
    status = 429


class MethodNotAllowed(SpectronError):
    """The resource exists but not with this HTTP method."""

    type = "method-not-allowed"
    status = 405


class MalformedJson(SpectronError):
    """The body is not one JSON document in UTF-8 (or nests deeper than the parser allows)."""

    type = "malformed-json"
    status = 400


class UnsupportedMediaType(SpectronError):
    """The body is not sent as application/json."""

    type = "unsupported-media-type"
    status = 415


class PayloadTooLarge(SpectronError):
    """The body is larger than the server accepts."""

    type = "payload-too-large"
    status = 413


class InvalidRequest(InvalidInput):
    """The body or query does not match the operation's schema (types, ranges, unknown fields)."""

    type = "invalid-request"


class ServerUnavailable(SpectronError):
    """The Spectron server could not be reached, or answered something that is not Spectron's."""

    type = "server-unavailable"
    status = 503


def type_uri(slug: str) -> str:
    """The stable problem type URI of an error slug."""
    return PROBLEM_BASE + slug


def title(slug: str) -> str:
    """A short, constant title per problem type ("session-not-found" → "Session not found")."""
    return slug.replace("-", " ").capitalize()


def problem_body(error: SpectronError, instance: str, **extra: Any) -> dict[str, Any]:
    """The problem+json document for an error raised while serving `instance` (the request path)."""
    return {
        "type": type_uri(error.type),
        "title": title(error.type),
        "status": error.status,
        "detail": str(error) or title(error.type),
        "instance": instance,
        **extra,
    }


def _subclasses(cls: type[SpectronError]) -> list[type[SpectronError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def error_class(slug: str) -> type[SpectronError] | None:
    """The exception class whose `type` is `slug`, among those loaded; None when unknown."""
    for cls in _subclasses(SpectronError):
        if cls.type == slug:
            return cls
    return None


def error_from_problem(status: int, body: Any) -> SpectronError:
    """Rebuild the typed exception a server answered with; unknown types become SpectronError."""
    problem: dict[str, Any] = body if isinstance(body, dict) else {"detail": str(body)}
    uri = str(problem.get("type", ""))
    slug = uri.removeprefix(PROBLEM_BASE) if uri.startswith(PROBLEM_BASE) else ""
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    cls = error_class(slug) if slug else None
    error = (cls or SpectronError)(detail)
    if cls is None:
        error.type = slug or "spectron-error"
        error.status = status
    error.problem = problem  # type: ignore[attr-defined]
    return error
