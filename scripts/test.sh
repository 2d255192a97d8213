#!/usr/bin/env bash
# Install everything the tests need into .venv, then lint, type-check and run the whole suite.
# Any failure, including pytest finding no tests (exit 5), fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test]"
npm --prefix clients/typescript ci --no-audit --no-fund --loglevel=error
# the console's browser tests drive Debian's Chromium through Playwright (no browser download)
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest -q -p no:cacheprovider "$@"
