#!/usr/bin/env bash
# Create .venv (Python 3.11) and install migration-dags with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
    .venv/bin/python -m pip install --quiet -e ".[test]" 2>&1 | grep -v -e "is ignored" -e "^$" || true
    .venv/bin/python -c "import migration_dags, dagster, great_expectations, pgserver, psycopg" 
    rm -f .venv/.installed-* && touch "$stamp"
fi
