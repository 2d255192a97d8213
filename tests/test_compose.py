"""compose.yaml cannot run here (no Docker engine): check its shape and that the code reads its variables."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from spectron.config import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parent.parent


def load() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_services_and_images() -> None:
    services = load()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"][0] == "serve"
    assert "scale" not in services["worker"], "workers scale with --scale, not a fixed count"


def product_sources() -> list[Path]:
    return [*(ROOT / "spectron").rglob("*.py"), *(ROOT / "projectors").rglob("*.py")]


def variables_read() -> set[str]:
    """Variables Settings.from_env maps to a field, plus any read straight from the environment."""
    config = (ROOT / "spectron" / "config.py").read_text()
    read = set(re.findall(r'\("(SPECTRON_[A-Z_]+)", ', config))
    source = "\n".join(p.read_text() for p in product_sources())
    return read | set(
        re.findall(r'(?:environ\.get\(|environ\[|getenv\()"(SPECTRON_[A-Z_]+)"', source)
    )


def test_every_spectron_variable_is_read_by_the_code() -> None:
    read = variables_read()
    for name, service in load()["services"].items():
        for var in service.get("environment", {}):
            if var.startswith("SPECTRON_"):
                assert var in ENV_VARS, f"{name} sets {var}, which config.ENV_VARS does not list"
                assert var in read, f"{name} sets {var}, which no code reads"


def test_listed_variables_are_all_read() -> None:
    assert set(ENV_VARS) == variables_read()


def test_only_settings_reads_the_environment() -> None:
    config = ROOT / "spectron" / "config.py"
    for path in product_sources():
        if path != config:
            text = path.read_text()
            assert not re.search(r"os\.environ|getenv\(", text), f"{path} reads the environment"


def test_every_listed_variable_sets_a_setting() -> None:
    unset = Settings.from_env({})
    assert unset == Settings()  # the defaults, when nothing is set
    for var in ENV_VARS:
        assert Settings.from_env({var: "7"}) != unset, f"{var} changes no setting"
        assert Settings.from_env({var: ""}) == unset, f"an empty {var} is not unset"
