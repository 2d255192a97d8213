"""One error tree: every SpectronError lives in spectron.errors, is drawn in its docstring and has
exactly one problem type in its table."""

from __future__ import annotations

import importlib
import pkgutil

import projectors
import spectron
from spectron import errors
from spectron.errors import PROBLEM_TYPES, SpectronError
from spectron.http.problems import error_class, error_from_problem, problem_body


def _all_subclasses(cls: type[SpectronError]) -> set[type[SpectronError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def _import_everything() -> None:
    for package in (spectron, projectors):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


def test_every_error_is_in_the_tree_the_drawing_and_the_table() -> None:
    _import_everything()
    classes = _all_subclasses(SpectronError) | {SpectronError}
    outside = sorted(
        f"{c.__module__}.{c.__name__}" for c in classes if c.__module__ != errors.__name__
    )
    assert outside == [], "errors belong in spectron/errors.py"
    assert classes == set(PROBLEM_TYPES)
    assert errors.__doc__ is not None
    assert all(cls.__name__ in errors.__doc__ for cls in classes)
    slugs = [slug for slug, _ in PROBLEM_TYPES.values()]
    assert len(slugs) == len(set(slugs))


def test_a_problem_round_trips_to_its_class() -> None:
    for cls, (slug, status) in PROBLEM_TYPES.items():
        body = problem_body(cls("why"), "/v1/x")
        assert (body["status"], body["type"].rsplit("/", 1)[1]) == (status, slug)
        assert error_class(slug) is cls
        again = error_from_problem(status, body)
        assert type(again) is cls and str(again) == "why"


def test_an_unknown_problem_keeps_its_type_and_status() -> None:
    error = error_from_problem(418, {"type": "https://example.org/teapot", "detail": "short"})
    assert type(error) is SpectronError and error.status == 418 and str(error) == "short"
