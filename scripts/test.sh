#!/usr/bin/env bash
# The test command: install, make sure PostgreSQL answers, run the suite (arguments go to pytest).
# MIGRATION_DAGS_TEST_SERVER picks the server: see scripts/ensure-postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck source=scripts/ensure-postgres.sh
source scripts/ensure-postgres.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$(mktemp -d)}"
echo "tests on $(.venv/bin/python -c 'import sys; from migration_dags.db import display_url; print(display_url(sys.argv[1]))' "$MIGRATION_DAGS_TEST_SERVER")" >&2
# not exec: ensure-postgres.sh's EXIT trap stops an embedded server this script started
# two workers: each test makes its own database (MIGRATION_DAGS_TEST_WORKERS=0 runs in one process)
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${MIGRATION_DAGS_TEST_WORKERS:-2}" "$@"
