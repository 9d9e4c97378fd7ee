#!/usr/bin/env bash
# Create .venv (Python 3.11) and install migration-dags with its test extras. Idempotent.
# pip's whole output goes to .venv/install.log; the console gets one line per stage and a count
# of the packages resolved so far, so a 2-3 minute install never looks stuck.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
    echo "installing migration-dags and its dependencies into .venv (2-3 minutes the first time; log: .venv/install.log)" >&2
    : > .venv/install.log
    # awk prints progress as pip goes: every 20th package resolved, then the download and install stages
    progress='
        /^Collecting / { n++; if (n % 20 == 0) { printf "  resolved %d packages...\n", n; fflush() } }
        /^Installing collected packages/ { printf "  installing %d packages...\n", NF - 3; fflush() }
        /^Successfully installed/ { printf "  installed %d packages\n", NF - 2; fflush() }'
    if ! { .venv/bin/python -m pip install --upgrade pip >> .venv/install.log 2>&1 \
           && .venv/bin/python -m pip install --progress-bar off -e ".[test]"; } 2>&1 \
           | tee -a .venv/install.log | awk "$progress" >&2; then
        tail -30 .venv/install.log >&2
        echo "install failed; the whole log is in .venv/install.log" >&2
        exit 1
    fi
    echo "  checking the imports" >&2
    .venv/bin/python -W ignore -c "import migration_dags, dagster, great_expectations, pgserver, psycopg, pymysql"
    rm -f .venv/.installed-* && touch "$stamp"
    echo "installed" >&2
fi
# our own modules' bytecode (only what changed is compiled again): with PYTHONDONTWRITEBYTECODE
# set, as on our CI machines, every command compiled them anew, ~0.2 s of each command's start
.venv/bin/python -m compileall -q migration_dags > /dev/null
