"""`up` stops at the expanded state, `status` says so and since when, `complete` refuses with exit
10 while old-shape writes are recent, `--force` contracts anyway and the audit records it."""

from __future__ import annotations

import json

import psycopg
import pytest
from operations.lifecycle import run_sql, write_migration

from migration_dags import cli

pytestmark = pytest.mark.db

SETUP = """
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO users SELECT g, 'u' || g || '@x.example', 'name ' || g FROM generate_series(1, 500) g;
"""
RENAME = """
name: rename_name
tables: [users]
operations:
  - rename_column: {table: users, from: name, to: full_name}
"""


@pytest.fixture
def args(database_url, migrations_dir, dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    run_sql(database_url, SETUP)
    write_migration(migrations_dir, RENAME)
    return ["--database-url", database_url, "--migrations-dir", str(migrations_dir)]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_up_expands_and_complete_waits_for_the_old_release(capsys, args, database_url):
    code, _, err = run(capsys, *args, "up", "rename_name")
    assert code == 0, err
    assert "expanded" in err and "search_path = public_rename_name, public" in err
    code, out, _ = run(capsys, *args, "status", "rename_name", "--json")
    status = json.loads(out)
    assert status["state"] == "expanded" and status["state_since"]
    assert status["version_schemas"] == ["public_rename_name"]
    assert not status["steps"]["cutover"]["applied"]

    with psycopg.connect(database_url, autocommit=True) as conn:  # the old release writes
        conn.execute("UPDATE users SET name = 'old release' WHERE id = 1")
    code, _, err = run(capsys, *args, "complete", "rename_name")
    assert code == 10, err
    assert "1 writes in the old shape were seen on public.users" in err
    code, out, _ = run(capsys, *args, "status", "rename_name")
    assert out.splitlines()[0].startswith("rename_name: expanded since")
    assert "old-shape writes 1" in out

    code, _, err = run(capsys, *args, "complete", "rename_name", "--force")
    assert code == 0, err
    code, out, _ = run(capsys, *args, "status", "rename_name", "--json")
    assert json.loads(out)["state"] == "complete"
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT full_name FROM public.users WHERE id = 1").fetchone() == (
            "old release",)
    code, out, _ = run(capsys, *args, "audit", "rename_name", "--json")
    cutovers = [e for e in json.loads(out) if e["step"] == "cutover"]
    assert [(e["status"], e["force_complete"]) for e in cutovers] == [
        ("FAILURE", False), ("SUCCESS", True)]


def test_complete_with_a_short_quiet_period_after_the_writes_stopped(capsys, args, database_url):
    assert run(capsys, *args, "up", "rename_name")[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET name = 'old release' WHERE id = 1")
    import time
    time.sleep(1.1)
    code, _, err = run(capsys, *args, "complete", "rename_name", "--quiet-seconds", "1")
    assert code == 0, err
    assert run(capsys, *args, "complete", "rename_name")[0] == 0  # already complete: no-op


def test_complete_before_up_is_refused(capsys, args):
    code, _, err = run(capsys, *args, "complete", "rename_name")
    assert code == 1 and "run `migration-dags up rename_name` first" in err


def test_up_complete_does_both(capsys, args, database_url):
    code, _, err = run(capsys, *args, "up", "rename_name", "--complete")
    assert code == 0, err
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert conn.execute("SELECT full_name FROM users WHERE id = 2").fetchone() == ("name 2",)
