"""The engine's step contract: idempotent ups, downs that undo only what is applied, failed steps
that undo themselves, bad input that changes nothing, and the rollback proof."""

from __future__ import annotations

import subprocess
import time

import psycopg
import pytest

from migration_dags.engine import MigrationEngine
from migration_dags.errors import (
    ColumnAlreadyExistsError,
    MigrationLockedError,
    RollbackFailedError,
    RefusedError,
    StepFailedError,
    TableDoesNotExistError,
)
from migration_dags.db import ADVISORY_LOCK_KEY, MARK_TOOL_WRITE
from migration_dags.spec import load_migration
from migration_dags.steps import STEPS
from pg_server import pg_dump

MIGRATION = """
name: flag_users
tables: [users]
settings: {batch_size: 50, partition_rows: 120}
operations:
  - add_column:
      table: users
      column: {name: old, type: boolean, default: 'false', nullable: false}
      up: "created_at < '2026-01-01'"
  - raw_sql:
      up: "CREATE OR REPLACE VIEW old_users AS SELECT id FROM users WHERE old"
      down: "DROP VIEW IF EXISTS old_users"
"""


def seed(conn, rows=500):
    conn.execute("CREATE TABLE users (id serial PRIMARY KEY, email text, created_at timestamptz)")
    conn.execute(
        """INSERT INTO users (email, created_at) SELECT 'u' || g || '@x',
           '2025-06-01'::timestamptz + g * interval '1 day' FROM generate_series(1, %s) g""",
        (rows,),
    )


def engine_for(migrations_dir, url, text=MIGRATION, name="flag_users"):
    path = migrations_dir / f"{name}.yaml"
    path.write_text(text)
    return MigrationEngine(load_migration(path), url)


def snapshot(url):
    schema = subprocess.run(
        [pg_dump(), "--schema-only", "--no-owner", "-N", "migration_dags", "-N", "migration_dags_backup", url],
        capture_output=True, text=True, check=True).stdout
    # pg_dump 15.14+ prints a random \restrict key each run
    schema = "\n".join(l for l in schema.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))
    with psycopg.connect(url) as c:
        rows = c.execute("SELECT * FROM users ORDER BY id").fetchall()
    return schema, rows


def up_all(engine):
    for step in STEPS:
        engine.up(step)


def down_all(engine):
    for step in reversed(STEPS):
        engine.down(step)


def test_up_then_down_restores_schema_and_data(conn, database_url, migrations_dir):
    seed(conn)
    before = snapshot(database_url)
    engine = engine_for(migrations_dir, database_url)
    up_all(engine)
    assert conn.execute("SELECT count(*) FROM users WHERE old").fetchone()[0] == 213
    assert conn.execute("SELECT count(*) FROM old_users").fetchone()[0] == 213
    assert conn.execute(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'old'"
    ).fetchone()[0]
    down_all(engine)
    assert snapshot(database_url) == before
    up_all(engine)  # and up again works
    assert conn.execute("SELECT count(*) FROM users WHERE old").fetchone()[0] == 213


def test_up_twice_changes_nothing_the_second_time(conn, database_url, migrations_dir):
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    up_all(engine)
    after_first = snapshot(database_url)
    reports = [engine.up(step) for step in STEPS]
    assert all(r.skipped_reason == "already applied" for r in reports)
    assert snapshot(database_url) == after_first


def test_down_undoes_only_applied_steps(conn, database_url, migrations_dir):
    seed(conn)
    before = snapshot(database_url)
    engine = engine_for(migrations_dir, database_url)
    engine.up("backup")
    engine.up("schema_change")
    reports = {s: engine.down(s) for s in reversed(STEPS)}
    assert reports["cutover"].skipped_reason == "not applied"
    assert reports["validation"].skipped_reason == "not applied"
    assert reports["schema_change"].skipped_reason is None
    assert snapshot(database_url) == before
    assert engine.status().is_applied("backup") is False


def test_plan_changes_nothing(conn, database_url, migrations_dir):
    seed(conn)
    before = snapshot(database_url)
    plan = engine_for(migrations_dir, database_url).plan()
    assert "ADD COLUMN" in "\n".join(plan["schema_change"])
    assert "SET NOT NULL" in "\n".join(plan["cutover"])
    assert snapshot(database_url) == before
    assert conn.execute("SELECT to_regnamespace('migration_dags') IS NULL").fetchone()[0]


def test_missing_table_changes_nothing(conn, database_url, migrations_dir):
    engine = engine_for(migrations_dir, database_url)
    with pytest.raises(TableDoesNotExistError) as info:
        engine.up("backup")
    assert "operations[0].add_column" in str(info.value) and "public.users" in str(info.value)
    assert conn.execute("SELECT to_regnamespace('migration_dags') IS NULL").fetchone()[0]


def test_existing_column_is_refused_before_any_ddl(conn, database_url, migrations_dir):
    seed(conn)
    conn.execute("ALTER TABLE users ADD COLUMN old boolean")
    before = snapshot(database_url)
    with pytest.raises(ColumnAlreadyExistsError):
        engine_for(migrations_dir, database_url).up("backup")
    assert snapshot(database_url) == before


def test_failing_step_undoes_its_own_partial_work(conn, database_url, migrations_dir):
    seed(conn)
    before = snapshot(database_url)
    broken = MIGRATION.replace(
        'up: "CREATE OR REPLACE VIEW old_users AS SELECT id FROM users WHERE old"',
        'up: "CREATE VIEW old_users AS SELECT no_such_column FROM users"',
    )
    engine = engine_for(migrations_dir, database_url, broken)
    engine.up("backup")
    with pytest.raises(StepFailedError) as info:
        engine.up("schema_change")
    assert "undone" in str(info.value)
    assert conn.execute(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'old'"
    ).fetchone()[0] == 0
    assert engine.status().is_applied("schema_change") is False
    engine.down("backup")
    assert snapshot(database_url) == before


def test_concurrent_run_is_refused(conn, database_url, migrations_dir):
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    engine.up("backup")
    other = psycopg.connect(database_url, autocommit=True, application_name="someone else's run")
    other.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        with pytest.raises(MigrationLockedError) as info:
            engine.up("schema_change")
        assert "someone else's run" in str(info.value)
    finally:
        pid = other.info.backend_pid
        other.close()
    # the server ends the closed session's backend (and frees its lock) asynchronously
    for _ in range(100):
        if not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            break
        time.sleep(0.05)
    engine.up("schema_change")


def test_rollback_proof_fails_loudly_when_data_differs(conn, database_url, migrations_dir):
    """A write marked as the tool's own (as a backfill batch or a restore is) that nothing undid:
    the tool changed a row, so the proof fails."""
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    up_all(engine)
    for step in ("cutover", "validation", "backfill", "schema_change"):
        engine.down(step)
    with conn.transaction():
        conn.execute(MARK_TOOL_WRITE)
        conn.execute("UPDATE users SET email = 'changed' WHERE id = 3")
    with pytest.raises(RollbackFailedError) as info:
        engine.down("backup")
    assert "public.users (data: rows the application did not write" in str(info.value)
    assert "restore" in str(info.value)
    # the backup is kept so nothing is lost
    assert engine.status().is_applied("backup") is True


def test_application_writes_between_the_downs_are_not_a_difference(conn, database_url, migrations_dir):
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    up_all(engine)
    for step in ("cutover", "validation", "backfill", "schema_change"):
        engine.down(step)
    conn.execute("UPDATE users SET email = 'changed' WHERE id = 3")
    conn.execute("DELETE FROM users WHERE id = 4")
    conn.execute("INSERT INTO users (email, created_at) VALUES ('new@x', '2020-01-01')")
    report = engine.down("backup")
    proof = report.extra["proof"]["public.users"]
    assert proof["untouched_rows_equal"] and proof["application_inserted"] == 1
    assert proof["application_deleted"] == 1 and proof["application_writes_lost"] == 0
    assert conn.execute("SELECT email FROM users WHERE id = 3").fetchone()[0] == "changed"
    assert engine.status().is_applied("backup") is False


def test_live_writes_during_backfill_are_filled_by_trigger(conn, database_url, migrations_dir):
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    engine.up("backup")
    engine.up("schema_change")
    conn.execute("INSERT INTO users (email, created_at) VALUES ('late@x', '2020-01-01')")
    conn.execute("UPDATE users SET created_at = '2019-01-01' WHERE id = 400")
    engine.up("backfill")
    assert conn.execute("SELECT old FROM users WHERE email = 'late@x'").fetchone()[0] is True
    assert conn.execute("SELECT old FROM users WHERE id = 400").fetchone()[0] is True


def _touchy_rollback(conn, database_url, migrations_dir):
    """A user trigger that rewrites rows on UPDATE, which the backfill fires (user_triggers: fire),
    makes the backfill change them: the rollback cannot prove equality (exit 4, backup kept).
    The application meanwhile deletes row 4 and updates row 5."""
    seed(conn)
    conn.execute(
        """CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.email := NEW.email || '!'; RETURN NEW; END $$"""
    )
    conn.execute("CREATE TRIGGER touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch()")
    before = snapshot(database_url)
    firing = MIGRATION.replace('      up: "created_at < \'2026-01-01\'"\n',
                               '      up: "created_at < \'2026-01-01\'"\n      user_triggers: fire\n')
    assert "user_triggers: fire" in firing
    engine = engine_for(migrations_dir, database_url, firing)
    up_all(engine)
    for step in ("cutover", "validation", "backfill", "schema_change"):
        engine.down(step)
    conn.execute("DELETE FROM users WHERE id = 4")
    conn.execute("UPDATE users SET created_at = '1999-01-01' WHERE id = 5")
    with pytest.raises(RollbackFailedError):
        engine.down("backup")
    return engine, before


def test_restore_after_a_failed_proof_keeps_application_writes(conn, database_url, migrations_dir):
    """restore puts back the rows only the migration changed (without firing the user trigger);
    rows 4 and 5 stay as the application left them (its update fired the trigger, so the email
    is its write too: no conflict)."""
    engine, before = _touchy_rollback(conn, database_url, migrations_dir)
    report = engine.restore()
    assert report.rows == 211  # 213 rows the trigger touched, less rows 4 and 5
    assert report.extra["conflicts"] == {}
    assert report.extra["discard_application_writes"] is False
    assert conn.execute("SELECT count(*) FROM users WHERE id = 4").fetchone()[0] == 0
    assert conn.execute("SELECT created_at::date::text, email LIKE '%!!' FROM users WHERE id = 5"
                        ).fetchone() == ("1999-01-01", True)
    assert engine.status().is_applied("backup") is False


def test_restore_discarding_application_writes_puts_the_backup_back_exactly(
        conn, database_url, migrations_dir):
    engine, before = _touchy_rollback(conn, database_url, migrations_dir)
    report = engine.restore(discard_application_writes=True)
    assert report.rows == 213  # 212 rows the trigger touched put back, 1 deleted row re-inserted
    assert report.extra["discard_application_writes"] is True
    assert snapshot(database_url) == before
    assert engine.status().is_applied("backup") is False


def test_restore_refuses_while_later_steps_are_applied(conn, database_url, migrations_dir):
    seed(conn)
    engine = engine_for(migrations_dir, database_url)
    engine.up("backup")
    engine.up("schema_change")
    with pytest.raises(RefusedError) as info:
        engine.restore()
    assert "down flag_users first" in str(info.value)


TWO_TASKS = """
name: two_tasks
tables: [items]
settings: {batch_size: 40, partition_rows: 100}
operations:
  - add_column:
      table: items
      column: {name: doubled, type: int}
      up: "qty * 2"
  - backfill:
      table: items
      set: {qty: "abs(qty)"}
"""


def test_a_backfill_writing_a_column_another_trigger_reads_keeps_it_in_step(
    conn, database_url, migrations_dir
):
    """Batches skip only their own operation's sync trigger: the backfill of qty must still fire
    add_column's trigger, or doubled would keep the value computed from the old qty."""
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, qty int)")
    conn.execute("INSERT INTO items SELECT g, CASE WHEN g % 2 = 0 THEN -g ELSE g END FROM generate_series(1, 300) g")
    engine = engine_for(migrations_dir, database_url, TWO_TASKS, name="two_tasks")
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    wrong = conn.execute("SELECT count(*) FROM items WHERE doubled IS DISTINCT FROM qty * 2 OR qty < 0").fetchone()[0]
    assert wrong == 0
