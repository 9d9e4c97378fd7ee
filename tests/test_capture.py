"""Change capture: the application's writes are recorded (key, last operation, columns written),
the tool's own writes are not, and the restore that keeps writes lists conflicts."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from migration_dags import capture
from migration_dags.backup_tables import (
    RECORD_HASH, backup_table_name, hashes_only, restorable_columns, take_backup,
)
from migration_dags.fingerprint import column_names
from migration_dags.db import MARK_TOOL_WRITE, LockSettings, mark_backfill_of
from migration_dags.errors import LockTimeoutExhaustedError
from migration_dags.identifiers import TableName
from migration_dags.state import capture as capture_state
from migration_dags.state import ensure_state_tables

USERS = TableName("public", "users")


@pytest.fixture
def backed_up(conn):
    conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text, note text)")
    conn.execute("INSERT INTO users SELECT g, 'u' || g, 'n' || g FROM generate_series(1, 10) g")
    ensure_state_tables(conn)
    capture_state.install(conn, USERS, backup_table_name("m", "run", USERS), ["id"], "m")
    return take_backup(conn, "m", "run", USERS)


def captured(conn, rec):
    table = capture_state.capture_table(rec.backup).sql
    return {k: (op, w) for k, op, w in conn.execute(f"SELECT id, op, written FROM {table}")}


def test_application_writes_are_recorded_with_the_columns_written(conn, backed_up):
    conn.execute("UPDATE users SET email = 'changed' WHERE id = 1")
    conn.execute("UPDATE users SET note = 'x' WHERE id = 1")
    conn.execute("INSERT INTO users VALUES (11, 'new', NULL)")
    conn.execute("DELETE FROM users WHERE id = 2")
    conn.execute("UPDATE users SET id = 30 WHERE id = 3")  # a key change: a delete and an insert
    assert captured(conn, backed_up) == {
        1: ("U", {"email": "changed", "note": "x"}),
        11: ("I", {"id": 11, "email": "new", "note": None}),
        2: ("D", {}),
        3: ("D", {}),
        30: ("I", {"id": 30, "email": "u3", "note": "n3"}),
    }
    assert capture.expected_row_count(conn, backed_up) == (10, 10, 2, 2)


def test_the_tools_own_writes_are_not_recorded(conn, backed_up):
    for mark in (MARK_TOOL_WRITE, mark_backfill_of(None), mark_backfill_of("some_trigger")):
        with conn.transaction():
            conn.execute(mark)
            conn.execute("UPDATE users SET note = 'tool' WHERE id = 4")
            conn.execute("DELETE FROM users WHERE id = 5")
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("UPDATE users SET note = 'restored' WHERE id = 6")
    assert captured(conn, backed_up) == {}
    proof = capture.prove(conn, backed_up)
    assert proof.problem.startswith("data: rows the application did not write differ")


def test_restore_keeps_application_writes_and_lists_conflicts(conn, backed_up):
    with conn.transaction():  # the migration changes rows 1-3 and deletes 4
        conn.execute(MARK_TOOL_WRITE)
        conn.execute("UPDATE users SET note = 'migrated' WHERE id <= 3")
        conn.execute("DELETE FROM users WHERE id = 4")
    conn.execute("UPDATE users SET email = 'app' WHERE id = 2")   # both changed row 2
    conn.execute("UPDATE users SET note = 'app' WHERE id = 3")    # the application rewrote note
    conn.execute("UPDATE users SET email = 'app' WHERE id = 7")   # only the application
    done = capture.restore_keeping_writes(conn, backed_up, restorable_columns(conn, backed_up))
    assert (done.changed, done.conflicts, done.conflict_keys) == (2, 1, ["(2)"])
    rows = dict(conn.execute("SELECT id, email || '/' || note FROM users WHERE id <= 7").fetchall())
    assert rows == {1: "u1/n1", 2: "app/migrated", 3: "u3/app", 4: "u4/n4", 5: "u5/n5",
                    6: "u6/n6", 7: "app/n7"}
    proof = capture.prove(conn, backed_up)
    assert proof.problem is None or "do not hold" not in proof.problem


def test_removing_capture_leaves_nothing(conn, backed_up):
    capture_state.remove(conn, USERS, backed_up.backup, "m")
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass "
                        "AND NOT tgisinternal").fetchone()[0] == 0
    assert not capture_state.exists(conn, backed_up.backup)


@pytest.mark.parametrize("tolerance, passes", [(0, False), (1, True)])
def test_row_counts_follow_the_application_and_allow_a_declared_tolerance(
        conn, database_url, migrations_dir, tolerance, passes):
    """Application inserts and deletes move the expected count; a row the tool lost does not,
    unless the spec's row_count_tolerance allows it."""
    from migration_dags.engine import MigrationEngine
    from migration_dags.spec import load_migration

    conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
    conn.execute("INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 10) g")
    path = migrations_dir / "flag.yaml"
    path.write_text(f"""
name: flag
tables: [users]
validation: {{row_count: exact, row_count_tolerance: {tolerance}}}
operations:
  - add_column: {{table: users, column: {{name: flag, type: boolean}}}}
""")
    engine = MigrationEngine(load_migration(path), database_url)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    conn.execute("INSERT INTO users VALUES (11, 'a'), (12, 'b')")
    conn.execute("DELETE FROM users WHERE id = 1")
    with conn.transaction():  # a row the tool lost
        conn.execute(MARK_TOOL_WRITE)
        conn.execute("DELETE FROM users WHERE id = 2")
    [count] = [o for o in engine.run_checks(conn) if o.name == "users.row_count"]
    assert (count.passed, count.observed) == (passes, 10)
    assert "backup (10) + 2 inserted - 1 deleted by the application = 11" in count.description


def _move_to_the_end(conn, column):
    conn.execute("ALTER TABLE users ADD COLUMN moved text")
    conn.execute(f"UPDATE users SET moved = {column}")
    conn.execute(f"ALTER TABLE users DROP COLUMN {column}")
    conn.execute(f"ALTER TABLE users RENAME COLUMN moved TO {column}")


def test_the_proof_accepts_only_the_column_move_plan_announced(conn, backed_up):
    """email moved to the end (what a down after alter_column's cutover does): accepted when
    plan announced email, a schema difference otherwise."""
    _move_to_the_end(conn, "email")
    assert capture.moved_to_the_end(conn, backed_up, frozenset({"email"})) == ["email"]
    proof = capture.prove(conn, backed_up, frozenset({"email"}))
    assert proof.problem is None and "email now last" in proof.figures["differs_in"]
    assert capture.prove(conn, backed_up, frozenset({"note"})).problem == "column order"
    assert capture.prove(conn, backed_up).problem == "column order"


def test_the_proof_refuses_an_order_beyond_the_announced_move(conn, backed_up):
    _move_to_the_end(conn, "email")
    _move_to_the_end(conn, "id")  # not announced: id is now last, email before it
    assert capture.moved_to_the_end(conn, backed_up, frozenset({"email"})) == []


@pytest.fixture
def hashed(conn):
    """The same table, backed up as key and row hashes (a migration that only adds to it)."""
    conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text, note text)")
    conn.execute("INSERT INTO users SELECT g, 'u' || g, 'n' || g FROM generate_series(1, 10) g")
    ensure_state_tables(conn)
    capture_state.install(conn, USERS, backup_table_name("m", "run", USERS), ["id"], "m")
    return take_backup(conn, "m", "run", USERS, hashes_only=True)


def test_a_hashes_only_backup_holds_the_key_and_a_hash_with_a_full_copys_figures(conn, hashed):
    assert hashes_only(conn, hashed)
    assert column_names(conn, hashed.backup) == ["id", RECORD_HASH]
    full = take_backup(conn, "other", "run", USERS)
    assert not hashes_only(conn, full)
    assert (hashed.row_count, hashed.data_fingerprint) == (full.row_count, full.data_fingerprint)


def test_a_hashes_only_backup_proves_the_table_under_application_writes(conn, hashed):
    conn.execute("UPDATE users SET email = 'changed' WHERE id = 1")
    conn.execute("INSERT INTO users VALUES (11, 'new', NULL)")
    conn.execute("DELETE FROM users WHERE id = 2")
    conn.execute("UPDATE users SET id = 30 WHERE id = 3")
    proof = capture.prove(conn, hashed)
    assert proof.problem is None and proof.figures["data_equal"] is True
    assert proof.figures["untouched_rows_equal"] is True


def test_a_hashes_only_backup_still_catches_a_row_the_tool_altered(conn, hashed):
    with conn.transaction():
        conn.execute(MARK_TOOL_WRITE)
        conn.execute("UPDATE users SET note = 'tool' WHERE id = 4")
    proof = capture.prove(conn, hashed)
    assert proof.problem.startswith("data: rows the application did not write differ")


PAYMENTS = TableName("public", "payments")


@pytest.fixture
def partitioned(conn, database_url):
    """A partitioned table whose capture trigger is cloned onto each partition, and a second
    session, the application, holding a write lock on the last partition."""
    conn.execute("CREATE TABLE payments (id int, day date, amount numeric, PRIMARY KEY (day, id)) "
                 "PARTITION BY RANGE (day)")
    conn.execute("CREATE TABLE payments_1 PARTITION OF payments FOR VALUES FROM ('2022-01-01') TO ('2022-02-01')")
    conn.execute("CREATE TABLE payments_2 PARTITION OF payments FOR VALUES FROM ('2022-02-01') TO ('2022-03-01')")
    ensure_state_tables(conn)
    capture_state.install(conn, PAYMENTS, backup_table_name("m", "run", PAYMENTS), ["day", "id"], "m")
    app = psycopg.connect(database_url)
    app.execute("INSERT INTO payments_2 VALUES (1, '2022-02-03', 5)")  # open transaction
    yield app
    app.close()


def test_stopping_capture_gives_way_to_the_application_and_retries(conn, partitioned):
    """The drop locks every partition (in an order the application's foreign-key checks may take
    the other way round: pagila's payments deadlocked with a rental delete). It waits at most
    lock_timeout per try, so writes queue behind it briefly, and it succeeds once the lock is free."""
    threading.Timer(0.6, partitioned.commit).start()
    started = time.monotonic()
    capture_state.stop(conn, PAYMENTS, "m", LockSettings(lock_timeout_ms=100, retries=30))
    assert time.monotonic() - started >= 0.5
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s",
                        (capture_state.capture_trigger("m"),)).fetchone()[0] == 0


def test_stopping_capture_that_cannot_get_its_lock_changes_nothing(conn, partitioned):
    with pytest.raises(LockTimeoutExhaustedError):
        capture_state.stop(conn, PAYMENTS, "m", LockSettings(lock_timeout_ms=50, retries=2))
    # the parent's trigger and its clone on each partition
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s",
                        (capture_state.capture_trigger("m"),)).fetchone()[0] == 3
