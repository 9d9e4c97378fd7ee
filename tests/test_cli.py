"""The migration-dags CLI: exit codes, one-line errors, plan/up/down/status on a real database.

Most tests call main([...]) in-process (Dagster imports once); one runs the installed executable.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from migration_dags import cli
from migration_dags.engine import MigrationEngine
from migration_dags.db import ADVISORY_LOCK_KEY
from orchestration.samples import ADD_FLAG, ADD_VIEW, CLOCK_STAMP, seed_items, snapshot, write_migration

REPO = Path(__file__).resolve().parent.parent
DEAD_URL = "postgresql://postgres@127.0.0.1:1/x"


@pytest.fixture(autouse=True)
def no_embedded_server(monkeypatch):
    """A test that forgets --database-url fails fast instead of starting the embedded server."""
    monkeypatch.setenv("MIGRATION_DAGS_DATABASE_URL", DEAD_URL)


@pytest.fixture(autouse=True)
def home(dagster_home):
    """Every test gets its own DAGSTER_HOME (never ./.dagster_home), telemetry notice off."""
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dagster_home


@pytest.fixture
def items_url(database_url):
    seed_items(database_url)
    return database_url


@pytest.fixture
def folder(migrations_dir):
    write_migration(migrations_dir, ADD_FLAG)
    return migrations_dir


def run(capsys, *argv: str) -> tuple[int, str, list[str]]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("migration-dags: error:")]


def run_count(home: Path) -> int:
    with dg.DagsterInstance.get() as instance:
        return len(instance.get_run_records())


def test_list_prints_the_migrations_in_order(capsys, migrations_dir):
    write_migration(migrations_dir, ADD_FLAG)
    write_migration(migrations_dir, ADD_VIEW.replace("operations:", "depends_on: [add_flag]\noperations:"))

    code, out, _ = run(capsys, "--migrations-dir", str(migrations_dir), "list")

    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["add_flag", "add_view"]
    assert "(after add_flag)" in out


def test_a_malformed_file_exits_2_with_one_line_naming_file_and_field(capsys, migrations_dir):
    (migrations_dir / "broken.yaml").write_text(
        "name: broken\noperations:\n"
        "  - add_column: {table: items, column: {name: x, type: 'text; DROP TABLE items'}}\n"
    )

    code, out, err = run(capsys, "--migrations-dir", str(migrations_dir), "up", "broken", "--complete")

    assert code == 2 and out == ""
    assert len(err) == 1
    assert err[0].startswith(f"migration-dags: error: {migrations_dir / 'broken.yaml'}: "
                             "operations[0].add_column.column.type: ")


def test_an_unknown_migration_exits_2_naming_the_known_ones(capsys, folder):
    code, _, err = run(capsys, "status", "nope", "--migrations-dir", str(folder))

    assert code == 2
    assert err == ["migration-dags: error: no migration named 'nope'; known: add_flag"]


def test_a_dead_database_url_is_one_line(capsys, folder, home):
    code, _, err = run(capsys, "--migrations-dir", str(folder), "--database-url", DEAD_URL, "up", "add_flag", "--complete")

    assert code == 5
    assert len(err) == 1 and err[0].startswith("migration-dags: error: cannot connect to database "
                                               "postgresql://postgres@127.0.0.1:1/x")


def test_a_concurrent_run_is_refused_naming_the_holder(capsys, folder, items_url, home):
    with psycopg.connect(items_url, autocommit=True, application_name="held-by-test") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        code, _, err = run(capsys, "up", "add_flag", "--complete", "--migrations-dir", str(folder),
                           "--database-url", items_url)

    assert code == 6
    assert len(errors(err)) == 1 and "held-by-test" in errors(err)[0], err
    assert "another migration run holds the lock" in errors(err)[0]
    # the refused attempt is in the run history, as a failed run
    with dg.DagsterInstance.get() as instance:
        [record] = instance.get_run_records()
    assert record.dagster_run.status == dg.DagsterRunStatus.FAILURE
    assert record.dagster_run.tags["step"] == "backup,schema_change"


def test_plan_prints_the_sql_and_changes_nothing(capsys, folder, items_url):
    before = snapshot(items_url)

    code, out, _ = run(capsys, "plan", "add_flag", "--migrations-dir", str(folder),
                       "--database-url", items_url)

    assert code == 0
    assert "-- ===== schema_change =====" in out and "ADD COLUMN" in out
    assert "-- ===== cutover =====" in out and "SET NOT NULL" in out
    assert snapshot(items_url) == before
    with psycopg.connect(items_url) as conn:
        assert conn.execute("SELECT to_regnamespace('migration_dags')").fetchone()[0] is None


def test_up_twice_the_second_changes_nothing(capsys, folder, items_url, home):
    args = ["--migrations-dir", str(folder), "--database-url", items_url]
    code, _, err = run(capsys, *args, "up", "add_flag", "--complete")
    assert code == 0 and errors(err) == []
    assert err[-1].startswith("migration-dags: add_flag: applied (2 runs")
    after_first, runs_after_first = snapshot(items_url), run_count(home)

    code, _, err = run(capsys, *args, "up", "add_flag", "--complete")

    assert code == 0
    assert err == ["migration-dags: add_flag: every step is already applied; nothing to do"]
    assert snapshot(items_url) == after_first and run_count(home) == runs_after_first


def test_up_then_down_restores_the_schema(capsys, folder, items_url, home):
    args = ["--migrations-dir", str(folder), "--database-url", items_url, "--actor", "alice"]
    before = snapshot(items_url)
    assert run(capsys, *args, "up", "add_flag", "--complete")[0] == 0
    assert snapshot(items_url) != before

    code, _, err = run(capsys, *args, "down", "add_flag")

    assert code == 0 and errors(err) == []
    assert snapshot(items_url) == before
    assert "rolled back; the tables equal their pre-migration backup" in err[-1]
    with dg.DagsterInstance.get() as instance:
        [down] = instance.get_run_records(dg.RunsFilter(tags={"direction": "down"}))
    assert down.dagster_run.tags["actor"] == "alice" and down.dagster_run.is_success


def test_status_shows_steps_partitions_and_rows(capsys, folder, items_url, home):
    args = ["--migrations-dir", str(folder), "--database-url", items_url]
    code, out, _ = run(capsys, *args, "status", "add_flag")
    assert code == 0 and out.splitlines()[0] == "add_flag: not applied"
    assert sum("not applied" in line for line in out.splitlines()[1:]) == 5

    run(capsys, *args, "up", "add_flag", "--complete")
    code, out, _ = run(capsys, *args, "status", "add_flag", "--json")

    status = json.loads(out)
    assert all(step["applied"] for step in status["steps"].values())
    assert status["backfill"]["rows_done"] == 200
    assert status["backfill"]["partitions_done"] == status["backfill"]["partitions_total"] > 1


def test_a_failed_validation_exits_3_after_rolling_back(capsys, migrations_dir, items_url, home):
    write_migration(migrations_dir, CLOCK_STAMP)
    before = snapshot(items_url)

    code, _, err = run(capsys, "up", "clock_stamp", "--complete", "--migrations-dir", str(migrations_dir),
                       "--database-url", items_url)

    assert code == 3
    [line] = errors(err)
    assert "validation failed: items.stamped.equals_up" in line and "rolled back" in line
    assert snapshot(items_url) == before


def test_an_unexpected_error_exits_1_with_a_hint(capsys, folder, items_url, monkeypatch):
    def broken(self):
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(MigrationEngine, "status", broken)
    args = ["status", "add_flag", "--migrations-dir", str(folder), "--database-url", items_url]

    code, _, err = run(capsys, *args)
    assert code == 1
    assert err == ["migration-dags: error: unexpected RuntimeError: something unforeseen "
                   "(rerun with --debug for the traceback)"]

    code, _, err = run(capsys, *args, "--debug")
    assert code == 1 and err[0] == "Traceback (most recent call last):"


def test_a_lock_error_outside_the_retries_exits_7_saying_to_run_again(capsys, folder, items_url,
                                                                     monkeypatch):
    def deadlocked(self):
        raise psycopg.errors.DeadlockDetected("deadlock detected\nDETAIL: Process 1 waits")

    monkeypatch.setattr(MigrationEngine, "status", deadlocked)
    code, _, err = run(capsys, "status", "add_flag", "--migrations-dir", str(folder),
                       "--database-url", items_url)
    assert code == 7
    assert err == ["migration-dags: error: a statement gave way to another session's locks "
                   "(deadlock detected DETAIL: Process 1 waits); its transaction was rolled "
                   "back: run the same command again"]


def test_the_installed_command_runs_up_and_keeps_dagster_quiet(folder, items_url, home):
    env = {**os.environ, "MIGRATION_DAGS_DATABASE_URL": items_url,
           "MIGRATION_DAGS_MIGRATIONS_DIR": str(folder), "DAGSTER_HOME": str(home)}
    done = subprocess.run([str(REPO / ".venv/bin/migration-dags"), "up", "add_flag", "--complete"],
                          env=env, capture_output=True, text=True, timeout=180)

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("migration-dags: ") for line in lines), done.stderr
    assert run_count(home) == 2  # the steps before the backfill; the backfill and after it


def test_global_options_after_the_command_win_over_those_before(capsys, folder, items_url):
    code, out, err = run(capsys, "--database-url", DEAD_URL, "--migrations-dir", "/nowhere",
                         "plan", "add_flag", "--database-url", items_url, "--migrations-dir", str(folder))

    assert code == 0, err
    assert "-- ===== schema_change =====" in out


def test_a_flag_before_the_command_holds_for_the_command(capsys, folder, items_url, monkeypatch):
    def broken(self):
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(MigrationEngine, "status", broken)

    code, _, err = run(capsys, "--debug", "status", "add_flag", "--migrations-dir", str(folder),
                       "--database-url", items_url)

    assert code == 1 and err[0] == "Traceback (most recent call last):"


@pytest.mark.parametrize("command", ["plan", "up"])
def test_an_unreadable_database_url_exits_2_naming_the_option(capsys, folder, home, command):
    code, out, err = run(capsys, command, "add_flag", "--migrations-dir", str(folder),
                         "--database-url", "not-a-url")

    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("migration-dags: error: cannot read the database URL "
                                               "'not-a-url': ")
    assert "--database-url" in err[0]
    assert run_count(home) == 0


def test_a_usage_error_returns_2_with_the_usage_and_one_error_line(capsys):
    code, out, err = run(capsys, "plan")

    assert code == 2 and out == ""
    assert err == ["Usage: migration-dags plan [OPTIONS] NAME",
                   "migration-dags plan: error: Missing argument 'NAME'."]

    code, _, err = run(capsys, "nope")
    assert code == 2 and err[-1] == "migration-dags: error: No such command 'nope'."


def test_help_returns_0_and_lists_the_commands_in_their_order(capsys):
    code, out, _ = run(capsys, "--help")

    assert code == 0
    rows = out.split("Commands:\n")[1].splitlines()
    commands = [row.split()[0] for row in rows if row.startswith("  ") and not row.startswith("   ")]
    assert commands == ["list", "plan", "schema", "up", "complete", "down", "restore", "status", "audit",
                        "lint", "verify", "ui", "embedded"]


def test_ctrl_c_exits_130_with_one_line(capsys, folder, items_url, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(MigrationEngine, "status", interrupted)

    code, _, err = run(capsys, "status", "add_flag", "--migrations-dir", str(folder),
                       "--database-url", items_url)

    assert code == 130
    assert err == ["migration-dags: error: interrupted; a step that was running has undone its own "
                   "partial work or will resume where it stopped"]


UNDER_WRITES = """
name: stamp_users
description: A column whose parity check can never pass, on a table the application keeps writing.
tables: [users]
settings: {partition_rows: 1000, batch_size: 200}
operations:
  - add_column:
      table: users
      column: {name: stamped, type: double precision}
      up: "extract(epoch from clock_timestamp())"
"""


def test_a_failed_validation_under_writes_exits_3_keeping_every_application_write(
        capsys, migrations_dir, database_url, home):
    """The row counts pass although rows come and go (backup + inserted - deleted); the parity
    check fails; the rollback's proof passes under the same writes: exit 3, not 4, and every
    write the application made is there."""
    from operations.lifecycle import run_sql
    from operations.writers import Application, Workload, check_writes_survived, rows_as_text

    run_sql(database_url, """
        CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
        INSERT INTO users SELECT g, 'user' || g || '@Example.com' FROM generate_series(1, 3000) g;
    """)
    (migrations_dir / "stamp_users.yaml").write_text(UNDER_WRITES)
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = rows_as_text(conn, "users", "id")
    app = Application(database_url, Workload(
        "users", "id", range(1, 3001),
        insert=lambda rng, k: {"email": f"new{k}@Example.com"},
        updates=[lambda rng: {"email": f"w{rng.randrange(10**6)}@Example.com"}],
        optional={"stamped"}, pause_s=0.005)).start()
    try:
        app.wait_for_writes(20)
        code, _, err = run(capsys, "up", "stamp_users", "--complete", "--migrations-dir", str(migrations_dir),
                           "--database-url", database_url)
    finally:
        app.stop()
    assert code == 3, err
    [line] = errors(err)
    assert "validation failed: users.stamped.equals_up" in line and "rolled back" in line
    assert "row_count" not in line
    assert app.counts["insert"] and app.counts["update"] and app.counts["delete"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        check_writes_survived(app, rows_as_text(conn, "users", "id"), before, when="after exit 3")
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE column_name = 'stamped'").fetchone()[0] == 0
