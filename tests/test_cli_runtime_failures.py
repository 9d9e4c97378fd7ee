"""A backfill that fails on the data (exit 8, the key range named, committed rows counted), and a
migration file changed since it was applied (exit 2 unless --allow-changed; status shows it)."""

from __future__ import annotations

import json

import psycopg
import psycopg.conninfo
import pytest

from migration_dags import cli
from migration_dags.run_tags import target_text
from orchestration.samples import seed_items, snapshot, write_migration

DIVIDES = """
name: divides
tables: [items]
settings: {partition_rows: 100, batch_size: 25}
operations:
  - add_column: {table: items, column: {name: name_len, type: int}}
  - backfill:
      table: items
      set: {name_len: "length(name) / (CASE WHEN id = 137 THEN 0 ELSE 1 END)"}
"""
FIXED = DIVIDES.replace("(CASE WHEN id = 137 THEN 0 ELSE 1 END)", "1")


@pytest.fixture(autouse=True)
def home(dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dagster_home


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_failing_backfill_names_its_key_range_and_resumes_after_the_file_is_fixed(
        capsys, database_url, migrations_dir):
    seed_items(database_url)
    before = snapshot(database_url)
    path = write_migration(migrations_dir, DIVIDES)
    common = ("--database-url", database_url, "--migrations-dir", str(migrations_dir))

    code, _, err = run(capsys, *common, "up", "divides", "--complete")
    assert code == 8, err
    assert "step backfill, partition" in err and "DivisionByZero" in err
    assert "first failing key (137)" in err and "partition 00-00001" in err
    assert "a batch in key range (1" in err  # after the last batch saved before 137
    assert "--allow-changed" in err and "migration-dags down divides" in err
    with psycopg.connect(database_url) as conn:  # the batches before it stayed committed
        committed = conn.execute("SELECT count(name_len) FROM items").fetchone()[0]
        assert 125 <= committed < 200  # every key <= 125 at least (batches of 25 before 137)

    code, out, _ = run(capsys, *common, "audit", "divides", "--json")
    backfill = [e for e in json.loads(out) if "backfill" in e["step"].split(",")][0]
    assert backfill["status"] == "FAILURE"
    [step] = [s for s in backfill["steps"] if s["step"] == "backfill"]
    assert step["rows_affected"] == committed  # counted truthfully

    path.write_text(FIXED)
    code, out, _ = run(capsys, *common, "status", "divides")
    assert "file changed since applied: 1 lines removed, 1 added" in out
    code, _, err = run(capsys, *common, "up", "divides", "--complete")
    assert code == 2 and "changed since divides was applied" in err and "nothing was run" in err
    code, _, err = run(capsys, *common, "up", "divides", "--complete", "--allow-changed")
    assert code == 0, err
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE name_len = length(name)").fetchone()[0] == 200
    code, out, _ = run(capsys, *common, "audit", "divides", "--json")
    resumed = [e for e in json.loads(out) if "backfill" in e["step"].split(",")][-1]
    assert resumed["status"] == "SUCCESS"
    assert "file_changed" in [s for s in resumed["steps"] if s["step"] == "backfill"][0]

    code, _, err = run(capsys, *common, "down", "divides")  # the file now recorded is the fixed one
    assert code == 0, err
    assert snapshot(database_url) == before


def test_audit_shows_restore_runs_the_target_database_and_file_checksums(capsys, database_url, migrations_dir):
    seed_items(database_url)
    before = snapshot(database_url)
    path = write_migration(migrations_dir, FIXED)
    common = ("--database-url", database_url, "--migrations-dir", str(migrations_dir))
    assert run(capsys, *common, "up", "divides", "--complete")[0] == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        # damage marked as the tool's own write (capture keeps application writes, so only a
        # change the tool made can fail the proof): down exits 4, restore repairs it
        conn.execute("SET migration_dags.backfill = 'on'")
        conn.execute("UPDATE items SET name = name || '!' WHERE id <= 3")
    code, _, err = run(capsys, *common, "down", "divides")
    assert code == 4, err
    code, _, err = run(capsys, *common, "restore", "divides")
    assert code == 0, err
    assert "restored 3 rows" in err
    assert snapshot(database_url) == before

    code, out, _ = run(capsys, *common, "audit", "divides", "--json")
    entries = json.loads(out)
    restore = [e for e in entries if e["step"] == "restore"]
    assert len(restore) == 1 and restore[0]["status"] == "SUCCESS"
    assert restore[0]["direction"] == "restore" and restore[0]["steps"][0]["rows_affected"] == 3
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    import hashlib
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    for entry in entries:
        # host:port/dbname of the test server, whichever it is (a socket folder for the embedded one)
        assert entry["target_database"] == target_text(database_url), entry
        assert entry["target_database"].endswith(f"/{dbname}")
        assert entry["file_checksum"] == checksum
        assert "password" not in json.dumps(entry)
