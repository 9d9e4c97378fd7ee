"""verify: a scratch clone, up -> validation -> down -> exact fingerprint -> up again, and squawk."""

from __future__ import annotations

import json

import psycopg
import pytest

from migration_dags import cli
from migration_dags.demo import seed_users
from migration_dags.spec import load_migration
from migration_dags.verify import clone_database, drop_database, verify_migration
from pg_server import REPO

ASSETS = str(REPO / "assets")

# a down that forgets to undo its up: nothing names the table, so no backup proof catches it
WRONG_DOWN = """
name: wrong_down
operations:
  - raw_sql:
      up: "ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text"
      down: "SELECT 1"
"""


def verify_cli(capsys, url, *argv):
    code = cli.main(["--database-url", url, "--json", "--quiet", "verify", *argv])
    out, _err = capsys.readouterr()
    return code, {c["check"]: c for c in json.loads(out)["checks"]}


def test_the_shipped_migration_verifies_and_the_target_is_untouched(capsys, database_url):
    seed_users(database_url, 2000)
    code, checks = verify_cli(capsys, database_url, "--migrations-dir", ASSETS, "add_email_verification")
    assert code == 0, checks
    assert list(checks) == ["squawk", "clone", "up", "down", "fingerprint", "up again"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regnamespace('migration_dags') IS NULL").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'mdg_verify_%%' "
                            "AND datname LIKE %s", (f"%_{__import__('os').getpid()}",)).fetchone() == (0,)


def test_a_wrong_down_fails_and_names_the_difference(capsys, database_url, migrations_dir):
    seed_users(database_url, 100)
    (migrations_dir / "wrong_down.yaml").write_text(WRONG_DOWN)
    code, checks = verify_cli(capsys, database_url, "--migrations-dir", str(migrations_dir))
    assert code == cli.FOUND_PROBLEMS
    assert checks["down"]["result"] == "pass" and checks["fingerprint"]["result"] == "FAIL"
    detail = checks["fingerprint"]["detail"]
    assert "public.users: column nickname text DEFAULT None" in detail and "left behind by down" in detail


def test_a_volatile_default_in_raw_sql_is_squawks_finding(capsys, database_url, migrations_dir):
    seed_users(database_url, 100)
    (migrations_dir / "add_token.yaml").write_text("""
name: add_token
tables: [users]
operations:
  - raw_sql:
      table: users
      up: "ALTER TABLE users ADD COLUMN IF NOT EXISTS token uuid DEFAULT gen_random_uuid()"
      down: "ALTER TABLE users DROP COLUMN IF EXISTS token"
""")
    code, checks = verify_cli(capsys, database_url, "--migrations-dir", str(migrations_dir))
    assert code == cli.FOUND_PROBLEMS
    assert checks["squawk adding-field-with-default"]["result"] == "FAIL"
    assert "schema_change up operations[0].raw_sql" in checks["squawk adding-field-with-default"]["detail"]
    assert checks["fingerprint"]["result"] == "pass"  # reversible: only squawk objects


def test_a_sample_keeps_every_referenced_row(conn, database_url):
    conn.execute("""CREATE TABLE customers (id int PRIMARY KEY, name text);
                    CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers);
                    INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 100) g;
                    INSERT INTO orders SELECT g, 101 - g FROM generate_series(1, 100) g;""")
    scratch = f"mdg_sample_{__import__('os').getpid()}"
    url = clone_database(database_url, scratch, sample_rows=5)
    try:
        with psycopg.connect(url) as copy:
            assert copy.execute("SELECT count(*) FROM orders").fetchone() == (5,)
            # the first 5 customers plus the 5 the sampled orders reference (96..100)
            assert copy.execute("SELECT array_agg(id ORDER BY id) FROM customers").fetchone() == (
                [1, 2, 3, 4, 5, 96, 97, 98, 99, 100],)
            assert copy.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone() == (1,)
    finally:
        drop_database(database_url, scratch)


def test_the_pytest_fixture_runs_the_same_check(migration_verify, database_url):
    seed_users(database_url, 500)
    report = migration_verify("add_email_verification", database_url=database_url,
                              migrations_dir=ASSETS, sample_rows=100)
    report.assert_passed()
    assert [c.check for c in report.checks][-1] == "up again"
