#!/usr/bin/env bash
# Sourced by test.sh: make sure a PostgreSQL server answers for the tests and export
# MIGRATION_DAGS_TEST_SERVER. Which server:
#   MIGRATION_DAGS_TEST_SERVER=URL        that server; if it does not answer, an error (never a
#                                         silent fall back to another server)
#   MIGRATION_DAGS_TEST_SERVER=embedded   the embedded PostgreSQL 16 (pgserver), started in
#                                         .migration_dags/test-pgdata and stopped when test.sh exits
#   unset                                 the machine's cluster at 127.0.0.1:5432 (started with
#                                         pg_ctlcluster if installed but stopped), else the embedded one
pg_answers() {
    .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}
TEST_EMBEDDED_DIR="$PWD/.migration_dags/test-pgdata"
use_embedded_server() {
    MIGRATION_DAGS_TEST_SERVER="$(.venv/bin/python -m migration_dags.embedded url --dir "$TEST_EMBEDDED_DIR")"
    export MIGRATION_DAGS_TEST_SERVER
    # stopped however test.sh ends, so no postmaster outlives the tests
    trap '.venv/bin/python -m migration_dags.embedded stop --dir "$TEST_EMBEDDED_DIR" >&2' EXIT
}
LOCAL_URL="postgresql://postgres@127.0.0.1:5432/postgres"
if [ "${MIGRATION_DAGS_TEST_SERVER:-}" = "embedded" ]; then
    echo "tests on the embedded PostgreSQL (pgserver)" >&2
    use_embedded_server
elif [ -n "${MIGRATION_DAGS_TEST_SERVER:-}" ]; then
    if ! pg_answers "$MIGRATION_DAGS_TEST_SERVER"; then
        shown="$(.venv/bin/python -c 'import sys; from migration_dags.db import display_url; print(display_url(sys.argv[1]))' "$MIGRATION_DAGS_TEST_SERVER")"
        echo "MIGRATION_DAGS_TEST_SERVER=$shown does not answer; start it, or unset the variable to use 127.0.0.1:5432 or the embedded server" >&2
        exit 2
    fi
else
    if ! pg_answers "$LOCAL_URL" && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "starting the machine's PostgreSQL cluster" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start >&2 || true
        for _ in $(seq 1 30); do pg_answers "$LOCAL_URL" && break; sleep 1; done
    fi
    if pg_answers "$LOCAL_URL"; then
        export MIGRATION_DAGS_TEST_SERVER="$LOCAL_URL"
    else
        echo "no PostgreSQL at 127.0.0.1:5432: using the embedded server (pgserver)" >&2
        use_embedded_server
    fi
fi
