"""The shipped copy_cross_database, through the CLI (Dagster runs, its Great Expectations suite),
from a seeded SQLite source: `up` copies every row, `up` again changes nothing, `down` leaves
`pg_dump --schema-only` and every row exactly as before, and the source is never written."""

from __future__ import annotations

import psycopg
import pytest

from legacy_sources import sqlite_source
from migration_dags import cli
from pg_server import REPO
from test_shipped_migration import dump

ASSETS = str(REPO / "assets")


@pytest.fixture(autouse=True)
def home(dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def cli_run(url: str, *argv: str) -> int:
    return cli.main(["--database-url", url, "--migrations-dir", ASSETS, *argv])


def test_up_copies_and_down_leaves_everything_as_before(database_url, tmp_path, monkeypatch):
    source = sqlite_source(tmp_path, 3000)
    monkeypatch.setenv("LEGACY_DATABASE_URL", source.url)
    with psycopg.connect(database_url, autocommit=True) as conn:  # what the migration depends on
        conn.execute("CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, "
                     "created_at timestamptz NOT NULL DEFAULT now())")
    before, source_before = dump(database_url), source.fingerprint()
    assert cli_run(database_url, "up", "copy_cross_database") == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*), count(*) FILTER (WHERE email <> lower(email)) "
                            "FROM customers").fetchone() == (3000, 0)
    assert cli_run(database_url, "up", "copy_cross_database") == 0  # nothing to do
    assert cli_run(database_url, "down", "copy_cross_database") == 0
    assert dump(database_url) == before
    assert source.fingerprint() == source_before
