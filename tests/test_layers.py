"""Layering: spectron's core never imports the projectors, and either package may be imported first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the modules that wire the projectors into a running process or expose one (CLI, HTTP, MCP);
# the rest of spectron/ is the core the projectors build on
WIRING = (
    "spectron/runtime.py",  # the composition root
    "spectron/maintenance.py",  # drives replays
    "spectron/service.py",
    "spectron/client.py",
    "spectron/cli.py",
    "spectron/ops_cli.py",
    "spectron/http/",
    "spectron/mcp/",
)
# every statement on the consumer positions' tables lives in spectron/positions.py
POSITION_TABLES = ("consumer_positions", "FROM positions", "INTO positions", "UPDATE positions")


def imported(path: Path) -> set[str]:
    """The modules a source file imports (absolute imports; the project uses no relative ones)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def test_the_core_imports_no_projector_module() -> None:
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(
            name for name in imported(path) if name.split(".")[0] == "projectors"
        )
        for path in sorted((ROOT / "spectron").rglob("*.py"))
        if not path.relative_to(ROOT).as_posix().startswith(WIRING)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_position_statements_live_in_one_module() -> None:
    found = [
        path.relative_to(ROOT).as_posix()
        for package in ("spectron", "projectors")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "positions.py" and any(t in path.read_text() for t in POSITION_TABLES)
    ]
    assert found == []


@pytest.mark.parametrize(
    "module", ["projectors.recall", "projectors.driver", "spectron.events", "spectron.log.postgres"]
)
def test_either_package_can_be_imported_first(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_no_module_imports_a_private_name_of_another() -> None:
    first_party = ("spectron", "projectors", "benchmarks", "tests")
    found = [
        f"{path.relative_to(ROOT).as_posix()}: {node.module}.{alias.name}"
        for package in first_party
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in first_party
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert found == []
