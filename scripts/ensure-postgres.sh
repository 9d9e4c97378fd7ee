#!/usr/bin/env bash
# Sourced by test.sh: make sure a PostgreSQL server answers for the tests and export
# MIGRATION_DAGS_TEST_SERVER. Order: an already configured server; the machine's own cluster at
# 127.0.0.1:5432 (started if installed but stopped); else the embedded server from pgserver.
pg_answers() {
    .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}
if [ -n "${MIGRATION_DAGS_TEST_SERVER:-}" ] && pg_answers "$MIGRATION_DAGS_TEST_SERVER"; then
    return 0
fi
LOCAL_URL="postgresql://postgres@127.0.0.1:5432/postgres"
if ! pg_answers "$LOCAL_URL" && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting the machine's PostgreSQL cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >&2 || true
    for _ in $(seq 1 30); do pg_answers "$LOCAL_URL" && break; sleep 1; done
fi
if pg_answers "$LOCAL_URL"; then
    export MIGRATION_DAGS_TEST_SERVER="$LOCAL_URL"
else
    echo "no PostgreSQL at 127.0.0.1:5432: using the embedded server (pgserver)" >&2
    MIGRATION_DAGS_TEST_SERVER="$(.venv/bin/python -c '
from pathlib import Path
from migration_dags.embedded import embedded_database_url
print(embedded_database_url(Path(".migration_dags/test-pgdata").resolve()))')"
    export MIGRATION_DAGS_TEST_SERVER
    # its own client tools (pg_dump must match the server version)
    PATH="$(.venv/bin/python -c 'import pgserver, os; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))'):$PATH"
    export PATH
fi
