"""CLI commands that need no database: the offline tier."""

from __future__ import annotations

import pytest

from migration_dags import cli
from pg_server import REPO

pytestmark = pytest.mark.offline
ASSETS = str(REPO / "assets")


def test_plan_offline_prints_five_steps_with_no_database(capsys, monkeypatch):
    monkeypatch.delenv("MIGRATION_DAGS_DATABASE_URL", raising=False)
    assert cli.main(["--migrations-dir", ASSETS, "plan", "add_email_verification", "--offline"]) == 0
    out = capsys.readouterr().out
    for step in ("backup", "schema_change", "backfill", "validation", "cutover"):
        assert f"-- ===== {step} =====" in out
    assert 'ADD COLUMN IF NOT EXISTS "email_verified" boolean DEFAULT false;' in out


def test_schema_prints_the_shipped_json_schema(capsys):
    import json

    from migration_dags.spec import migration_json_schema

    assert cli.main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == migration_json_schema()
    shipped = json.loads((REPO / "migration_dags" / "spec" / "migration.schema.json").read_text())
    assert printed == shipped


# -- the demo's last lines ----------------------------------------------------------------------
def test_the_demo_prints_a_url_that_reaches_its_database():
    from migration_dags.demo import as_url, next_steps

    socket = "user=postgres dbname=migration_dags_demo host=/work/x/.migration_dags/pgdata"
    assert as_url(socket) == "postgresql://postgres@/migration_dags_demo?host=/work/x/.migration_dags/pgdata"
    assert as_url("user=u password=p@ss host=db.example port=6543 dbname=d sslmode=require") == (
        "postgresql://u:p%40ss@db.example:6543/d?sslmode=require")
    lines = next_steps(socket, embedded=False)
    assert "export MIGRATION_DAGS_DATABASE_URL='postgresql://postgres@/migration_dags_demo?host=" in "\n".join(lines)
    assert any(line.split()[:2] == [".venv/bin/migration-dags", "ui"] for line in lines)


def test_plan_says_before_up_that_a_down_cannot_keep_the_column_order(capsys, tmp_path):
    (tmp_path / "retype.yaml").write_text(
        "name: retype\noperations:\n"
        "  - alter_column: {table: t, column: c, type: bigint, up: c::bigint, down: c::int}\n")
    assert cli.main(["--migrations-dir", str(tmp_path), "plan", "retype", "--offline"]) == 0
    out = capsys.readouterr().out
    notes = out.split("-- ===== notes =====\n")[1].split("-- ===== backup")[0]
    assert "public.t.c: cutover swaps in a new column, which becomes the last column" in notes
    assert "the proof reports that difference" in notes


# -- the command as installed: it exits without the interpreter's teardown (cli.run) -----------
def test_the_command_flushes_a_long_output_into_a_pipe_and_exits_with_its_code(monkeypatch):
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if k != "MIGRATION_DAGS_DATABASE_URL"}
    env["PYTHONPATH"] = str(REPO)
    plan = subprocess.run(
        [sys.executable, "-m", "migration_dags.cli", "--migrations-dir", ASSETS, "plan",
         "add_email_verification", "--offline"], env=env, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.rstrip().endswith(";") and "-- ===== cutover =====" in plan.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "migration_dags.cli", "--migrations-dir", ASSETS, "plan", "nope",
         "--offline"], env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode not in (0, 1) and missing.stdout == ""
    assert missing.stderr.startswith("migration-dags: error: ") and "nope" in missing.stderr
