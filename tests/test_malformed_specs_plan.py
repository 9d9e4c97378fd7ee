"""Property: a malformed migration file (malformed_specs.py) given to `plan` against a real
database exits 2 with one error line, and leaves the database exactly as it was: nothing a spec
says runs before it has been parsed and checked against the catalog (issue 10)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from malformed_specs import USERS_SQL, VALID, dump, malformed
from migration_dags import cli
from operations.lifecycle import quick_snapshot
from pg_server import create_database, drop_database

FOLDER = Path(tempfile.mkdtemp(prefix="malformed_plans_"))


@pytest.fixture(scope="module")
def users_url():
    name, url = create_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(USERS_SQL)
        yield url
    finally:
        drop_database(name)


def state(url: str) -> tuple:
    with psycopg.connect(url, autocommit=True) as conn:
        schemas = conn.execute("SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace").fetchone()
        return quick_snapshot(conn), schemas


def plan(text: str, url: str, capsys) -> tuple[int, str, str]:
    (FOLDER / "m.yaml").write_text(text)
    code = cli.main(["plan", "m", "--migrations-dir", str(FOLDER), "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_valid_file_plans(users_url, capsys):
    code, out, err = plan(dump(VALID), users_url, capsys)
    assert code == 0, err
    assert "ADD COLUMN" in out


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(case=malformed())
def test_every_malformed_file_exits_2_at_plan_and_changes_nothing(users_url, capsys, case):
    text, _at_load = case
    before = state(users_url)

    code, out, err = plan(text, users_url, capsys)

    assert code == 2, err[-500:]
    assert out == ""
    assert len([line for line in err.splitlines() if line.startswith("migration-dags: error:")]) == 1
    assert state(users_url) == before
