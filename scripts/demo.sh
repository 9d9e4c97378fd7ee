#!/usr/bin/env bash
# The demo: install, start the embedded PostgreSQL (or use MIGRATION_DAGS_DATABASE_URL), seed
# 100,000 users, run add_email_verification up, show its status, run it down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m migration_dags.demo "$@"
