#!/usr/bin/env bash
# The test command: install, make sure PostgreSQL answers, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck source=scripts/ensure-postgres.sh
source scripts/ensure-postgres.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$(mktemp -d)}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
