#!/bin/bash
# trial.sh NAME DB: up, status, complete, up again, down on DB (no application); then the schema
# and data compared with before (only the column order a down after cutover announces may differ)
set -u
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
n=$1; DB=$2; OUT=${TRIAL_OUT:-/tmp/sample_databases}; mkdir -p "$OUT"
export MIGRATION_DAGS_DATABASE_URL=postgresql://postgres@${PGHOST:-127.0.0.1}:5432/$DB
export DAGSTER_HOME=${DAGSTER_HOME:-$OUT/dagster_home}; mkdir -p "$DAGSTER_HOME"
M="$REPO/.venv/bin/migration-dags --quiet --migrations-dir $HERE/migrations/$n"
"$HERE/snap.sh" "$DB" "$OUT/before_$n"
for cmd in "up $n" "status $n" "complete $n" "up $n" "down $n"; do
  echo "--- $cmd"; $M $cmd 2>&1 | tail -6; echo "rc=${PIPESTATUS[0]}"
done
"$HERE/snap.sh" "$DB" "$OUT/after_$n"
diff "$OUT/before_$n.schema" "$OUT/after_$n.schema" && echo "schema identical"
diff "$OUT/before_$n.data" "$OUT/after_$n.data" && echo "data identical"
