"""The audit log: `migration-dags audit` reads who ran what and when back from Dagster's run
history, from SQLite instance storage and from PostgreSQL storage set up with deploy/dagster.yaml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

from migration_dags import cli
from migration_dags.orchestration import audit
from migration_dags.orchestration.assets import step_key
from migration_dags.orchestration.definitions import build_definitions
from migration_dags.orchestration.resources import MigrationDatabase
from orchestration.samples import seed_items, snapshot, write_migration

REPO = Path(__file__).resolve().parent.parent


from pg_server import SERVER_URL, create_database, drop_database  # noqa: E402

DEAD_URL = "postgresql://postgres@127.0.0.1:1/x"

# Validation fails: the backfill leaves a NULL in every 50th row of a NOT NULL column.
SCORE_WITH_NULLS = """
name: add_score
tables: [items]
settings: {partition_rows: 100, batch_size: 50}
operations:
  - add_column:
      table: items
      column: {name: score, type: integer, nullable: false}
      up: "CASE WHEN id % 50 = 0 THEN NULL ELSE id * 10 END"
"""


@pytest.fixture(autouse=True)
def no_embedded_server(monkeypatch):
    monkeypatch.setenv("MIGRATION_DAGS_DATABASE_URL", DEAD_URL)


@pytest.fixture
def items_url(database_url):
    seed_items(database_url)
    return database_url


@pytest.fixture
def sqlite_home(dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dagster_home


@pytest.fixture
def postgres_home(dagster_home, monkeypatch):
    """DAGSTER_HOME holding deploy/dagster.yaml, its variables pointing at a fresh database."""
    name, _url = create_database("mdg_dagster")
    server = psycopg.conninfo.conninfo_to_dict(SERVER_URL)
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    host = str(server.get("host") or "127.0.0.1")
    if host.startswith("/"):  # a unix socket (the embedded server): libpq's host parameter wins
        config["storage"]["postgres"]["postgres_db"]["params"] = {"host": host}
        host = "localhost"
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for variable, value in {"DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": str(server.get("port") or 5432),
                            "DAGSTER_PG_DB": name, "DAGSTER_PG_USER": str(server.get("user") or "postgres"),
                            "DAGSTER_PG_PASSWORD": str(server.get("password") or "")}.items():
        monkeypatch.setenv(variable, value)
    try:
        yield dagster_home
    finally:
        drop_database(name)


def _git_commit(folder: Path) -> str:
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "migrations"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def _audit(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
def test_audit_lists_the_up_runs_the_failed_check_and_the_rollback_in_order(
    storage, request, capsys, migrations_dir, items_url
):
    home = request.getfixturevalue(f"{storage}_home")
    write_migration(migrations_dir, SCORE_WITH_NULLS)
    commit = _git_commit(migrations_dir)
    before = snapshot(items_url)
    code = cli.main(["up", "add_score", "--complete", "--migrations-dir", str(migrations_dir),
                     "--database-url", items_url, "--actor", "alice"])
    assert code == 3 and snapshot(items_url) == before
    # and a run launched outside the CLI, as from the UI: no tags at launch; its first asset adds them
    defs = build_definitions(migrations_dir, MigrationDatabase(database_url=items_url))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == (
            "PostgresRunStorage" if storage == "postgres" else "SqliteRunStorage")
        defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, asset_selection=[step_key("add_score", "backup")],
            run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
        )
    capsys.readouterr()

    code, out, _ = _audit(capsys, "--json")

    assert code == 0
    entries = json.loads(out)
    # two runs for up: the steps before the backfill, then the backfill's with the steps after it
    assert [(e["step"], e["direction"], e["status"]) for e in entries] == [
        ("backup,schema_change", "up", "SUCCESS"), ("backfill,validation,cutover", "up", "FAILURE"),
        ("all", "down", "SUCCESS"), ("backup", "up", "SUCCESS"),
    ]
    cli_runs, ui_run = entries[:3], entries[3]
    assert {e["migration"] for e in entries} == {"add_score"}
    assert {(e["actor"], e["source"], e["code_version"]) for e in cli_runs} == {("alice", "cli", commit)}
    assert (ui_run["actor"], ui_run["source"], ui_run["job"]) == (None, "ui", "__ASSET_JOB")
    assert ui_run["target_database"] == cli_runs[0]["target_database"]
    assert ui_run["file_checksum"] == cli_runs[0]["file_checksum"]
    created = [e["created_at"] for e in entries]
    assert created == sorted(created)
    assert all(e["started_at"] <= e["ended_at"] for e in entries)
    before_backfill, validation, rollback = cli_runs
    assert [s["step"] for s in before_backfill["steps"]] == ["backup", "schema_change"]
    assert "ADD COLUMN" in before_backfill["steps"][1]["sql"]
    # cutover did not run: validation's blocking check stopped it inside the run
    assert [s["step"] for s in validation["steps"]] == ["backfill", "validation"]
    backfill = validation["steps"][0]
    # every row is written once, the 4 whose up expression is NULL too (fill_column's only_null)
    assert backfill["rows_affected"] == 200 and "UPDATE" in backfill["sql"]
    [parity] = [c for c in validation["checks"] if not c["passed"] and c["check"] != "applied"]
    assert parity["check"] == "parity" and parity["asset"] == "add_score/validation"
    assert parity["failed"] == [{"name": "items.score.not_null", "description": "no NULL in score",
                                 "observed": 4, "samples": ["50", "100", "150", "200"]}]
    assert "items.score.not_null" in validation["error"]
    assert rollback["job"] == "add_score__rollback"
    assert rollback["rollback"] == {"reason": "validation_failed", "failed_checks": "parity",
                                    "failed_step": None, "triggered_by_run": validation["run_id"]}
    assert [s["step"] for s in rollback["steps"]] == ["cutover", "validation", "backfill",
                                                       "schema_change", "backup"]
    assert rollback["steps"][-1]["proof"]["public.items"]["data_equal"] is True
    assert "DROP COLUMN" in rollback["steps"][3]["sql"]

    # the table: one line per run, the failed check's keys and the rollback's reason under it
    code, table, _ = _audit(capsys, "add_score")
    assert code == 0
    assert table.splitlines()[0].split()[:4] == ["created", "(UTC)", "run", "migration"]
    assert "items.score.not_null: observed 4; keys 50, 100, 150, 200" in table
    assert f"rollback: validation_failed (parity), triggered by run {validation['run_id'][:8]}" in table
    # filters
    assert json.loads(_audit(capsys, "other_migration", "--json")[1]) == []
    assert json.loads(_audit(capsys, "--since", "2999-01-01", "--json")[1]) == []
    since = validation["created_at"]
    assert [e["run_id"] for e in json.loads(_audit(capsys, "--since", since, "--json")[1])] == [
        e["run_id"] for e in entries[1:]]


def test_a_bad_since_is_exit_2(capsys, sqlite_home):
    code, _, err = _audit(capsys, "--since", "last tuesday")

    assert code == 2
    assert "--since: 'last tuesday' is not an ISO date" in err


def test_the_sql_of_a_step_is_read_out_of_its_markdown():
    sql = "ALTER TABLE t ADD COLUMN c int;"
    assert audit._sql_text(f"```sql\n{sql}\n```") == sql
    assert audit._sql_text("_no SQL ran_") == ""
    assert audit.parse_since("2026-11-26").isoformat() == "2026-11-26T00:00:00+00:00"
