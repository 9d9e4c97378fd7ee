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
    echo "installing migration-dags and its dependencies into .venv (log: .venv/install.log)" >&2
    if ! { .venv/bin/python -m pip install --upgrade pip \
           && .venv/bin/python -m pip install -e ".[test]"; } > .venv/install.log 2>&1; then
        tail -30 .venv/install.log >&2
        echo "install failed; the whole log is in .venv/install.log" >&2
        exit 1
    fi
    .venv/bin/python -c "import migration_dags, dagster, great_expectations, pgserver, psycopg" 
    rm -f .venv/.installed-* && touch "$stamp"
fi
