#!/usr/bin/env bash
# The demo: install, start the embedded PostgreSQL (or use MIGRATION_DAGS_DATABASE_URL), seed
# 100,000 users and old_table rows, run every shipped migration up (one fails validation first
# and rolls itself back), bring the last one down again, print the audit log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m migration_dags.demo "$@"
