#!/bin/bash
# live.sh NAME: on a fresh copy of the pagila database, app.py writes throughout up, complete
# --force, up again and down; then every last value it wrote is checked, and the schema compared
set -u
HERE=$(cd "$(dirname "$0")" && pwd); REPO=$(cd "$HERE/../.." && pwd)
n=$1; DB=pagila_live; HOST=${PGHOST:-127.0.0.1}; OUT=${TRIAL_OUT:-/tmp/sample_databases}; mkdir -p "$OUT"
psql -q -h "$HOST" -U postgres -c "drop database if exists $DB" -c "create database $DB template pagila"
URL=postgresql://postgres@$HOST:5432/$DB
export MIGRATION_DAGS_DATABASE_URL=$URL DAGSTER_HOME=${DAGSTER_HOME:-$OUT/dagster_home}; mkdir -p "$DAGSTER_HOME"
M="$REPO/.venv/bin/migration-dags --quiet --migrations-dir $HERE/migrations/$n"
"$HERE/snap.sh" "$DB" "$OUT/lbefore_$n"
rm -f "$OUT/stop_$n"
"$REPO/.venv/bin/python" "$HERE/app.py" "$URL" "$OUT/stop_$n" "$OUT/app_$n.json" "${RATE:-40}" &
sleep 2
for cmd in "up $n" "complete $n --force" "up $n" "down $n"; do
  echo "--- $cmd"; $M $cmd 2>&1 | tail -4; echo "rc=${PIPESTATUS[0]}"; sleep 1
done
touch "$OUT/stop_$n"; wait
"$REPO/.venv/bin/python" "$HERE/check_app.py" "$URL" "$OUT/app_$n.json"
"$HERE/snap.sh" "$DB" "$OUT/lafter_$n"
diff "$OUT/lbefore_$n.schema" "$OUT/lafter_$n.schema" > /dev/null && echo "schema identical" \
  || diff "$OUT/lbefore_$n.schema" "$OUT/lafter_$n.schema" | head -10
