"""RFC 9457 problem details: rendering errors as problems, and rebuilding typed errors from them.

The errors and their problem types live in spectron.errors (one tree, one table).
"""

from __future__ import annotations

from typing import Any

from spectron.errors import PROBLEM_TYPES, SpectronError

PROBLEM_BASE = "https://spectron.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


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


_BY_SLUG = {slug: cls for cls, (slug, _) in PROBLEM_TYPES.items()}


def error_class(slug: str) -> type[SpectronError] | None:
    """The exception class whose problem type is `slug`; None when unknown."""
    return _BY_SLUG.get(slug)


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
