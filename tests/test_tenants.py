"""Multi-tenant migrations: three schema tenants, one whose data fails validation; that tenant is
rolled back alone and left exactly as before, the other two applied; status shows each; --tenant
runs a canary; database tenants run in their own databases."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from migration_dags import cli, tenants
from migration_dags.errors import SpecError
from migration_dags.spec import load_migration
from operations.lifecycle import table_rows, write_migration
from pg_server import create_database, drop_database, pg_dump

MIGRATION = """
name: tenant_emails
tenants: "tenant_*"
settings: {partition_rows: 100, batch_size: 40}
validation: {suites: [tenant_users]}
operations:
  - add_column:
      table: users
      column: {name: email_lower, type: text, nullable: false}
      up: "lower(email)"
  - create_index: {name: users_email_lower_idx, table: users, columns: [email_lower]}
"""
SUITE = """{"name": "tenant_users", "meta": {"migration_dags": {"table": "users"}},
  "expectations": [{"type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "email_lower"}}]}"""


def seed(url: str, schema: str, rows: int = 250, null_emails: int = 0) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.users (id bigint PRIMARY KEY, email text)")
        conn.execute(f"INSERT INTO {schema}.users SELECT i, 'User' || i || '@Example.com' "
                     f"FROM generate_series(1, {rows}) i")
        conn.execute(f"UPDATE {schema}.users SET email = NULL WHERE id <= {null_emails}")


def schema_fingerprint(url: str, schema: str) -> tuple[str, list]:
    dump = subprocess.run([pg_dump(), "--schema-only", "--no-owner", "-n", schema, "-d", url],
                          check=True, capture_output=True, text=True).stdout
    dump = "\n".join(l for l in dump.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))
    with psycopg.connect(url) as conn:
        rows = {k: v for k, v in table_rows(conn).items() if k.startswith(schema + ".")}
    return dump, rows


@pytest.fixture
def three_tenants(database_url, migrations_dir, monkeypatch, tmp_path):
    seed(database_url, "tenant_a")
    seed(database_url, "tenant_b", null_emails=3)  # its data fails validation
    seed(database_url, "tenant_c", rows=120)
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / "tenant_users.json").write_text(SUITE)
    monkeypatch.setenv("MIGRATION_DAGS_EXPECTATIONS_DIR", str(suites))
    return write_migration(migrations_dir, MIGRATION)


def has_column(url: str, schema: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND "
            "table_name = 'users' AND column_name = 'email_lower'", (schema,)).fetchone()[0] == 1


def test_a_tenant_failing_validation_is_rolled_back_alone(database_url, three_tenants):
    before_b = schema_fingerprint(database_url, "tenant_b")
    result = tenants.run_up(three_tenants, database_url)
    assert [(o.tenant, o.outcome) for o in result.outcomes] == [
        ("tenant_a", tenants.APPLIED), ("tenant_b", tenants.ROLLED_BACK),
        ("tenant_c", tenants.APPLIED)]
    assert result.exit_code == 3
    assert "tenant tenant_b: validation failed, rolled back" in result.message()
    assert "users.email_lower.not_null" in result.message()
    assert schema_fingerprint(database_url, "tenant_b") == before_b
    assert has_column(database_url, "tenant_a") and has_column(database_url, "tenant_c")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM tenant_a.users WHERE email_lower = lower(email)"
                            ).fetchone()[0] == 250
    lines = {t: tenants.status_line(t, st) for t, st in tenants.status(three_tenants, database_url)}
    assert lines["tenant_a"].startswith("tenant_a  complete (5/5 steps; partitions 3/3, 250 rows)")
    assert lines["tenant_b"].startswith("tenant_b  not applied (0/5 steps")
    assert lines["tenant_c"].startswith("tenant_c  complete (5/5 steps; partitions 2/2, 120 rows)")

    # fixing the tenant's data and running up again applies it; the others are no-ops
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE tenant_b.users SET email = 'fixed' || id WHERE email IS NULL")
    again = tenants.run_up(three_tenants, database_url)
    assert [o.outcome for o in again.outcomes] == [tenants.APPLIED] * 3
    assert tenants.run_down(three_tenants, database_url) == ["tenant_a", "tenant_b", "tenant_c"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regnamespace('migration_dags')").fetchone()[0] is None


def test_the_cli_runs_a_canary_tenant_then_the_rest_and_status_shows_each(
        database_url, migrations_dir, three_tenants, dagster_home, capsys):
    def run(*argv):
        return cli.main(["--database-url", database_url, "--migrations-dir", str(migrations_dir),
                         *argv])

    before_b = schema_fingerprint(database_url, "tenant_b")
    assert run("up", "tenant_emails", "--tenant", "tenant_c") == 0  # the canary, expanded
    assert has_column(database_url, "tenant_c") and not has_column(database_url, "tenant_a")
    capsys.readouterr()
    assert run("status", "tenant_emails") == 0
    out = capsys.readouterr().out
    assert "tenant_a  not applied (0/5" in out and "tenant_c  expanded (4/5" in out
    assert run("complete", "tenant_emails", "--tenant", "tenant_c", "--force") == 0
    assert run("up", "tenant_emails", "--complete") == 3
    err = capsys.readouterr().err
    assert "tenant tenant_b" in err and "rolled back" in err
    assert "applied on the other tenants (tenant_a, tenant_c)" in err
    assert schema_fingerprint(database_url, "tenant_b") == before_b
    assert run("status", "tenant_emails", "--json") == 0
    import json

    shown = json.loads(capsys.readouterr().out)["tenants"]
    assert {t: s["state"] for t, s in shown.items()} == {
        "tenant_a": "complete", "tenant_b": "not applied", "tenant_c": "complete"}
    assert run("up", "tenant_emails", "--tenant", "tenant_x") == 2
    assert "no tenant named 'tenant_x'; known: tenant_a, tenant_b, tenant_c" in capsys.readouterr().err
    assert run("down", "tenant_emails") == 0
    assert not has_column(database_url, "tenant_a") and not has_column(database_url, "tenant_c")


def test_database_tenants_run_each_in_its_own_database(migrations_dir, monkeypatch):
    made = [create_database("mdg_tenant") for _ in range(2)]
    try:
        for (name, url), env, nulls in zip(made, ("ACME_DATABASE_URL", "GLOBEX_DATABASE_URL"), (0, 2)):
            seed(url, "app", null_emails=nulls)
            monkeypatch.setenv(env, url)
        migration = write_migration(migrations_dir, MIGRATION.replace(
            'tenants: "tenant_*"', "tenants: [{url_env: ACME_DATABASE_URL}, {url_env: GLOBEX_DATABASE_URL}]"
        ).replace("validation: {suites: [tenant_users]}\n", "").replace("table: users", "table: app.users"))
        result = tenants.run_up(migration, "")
        assert [(o.tenant, o.outcome) for o in result.outcomes] == [
            ("acme", tenants.APPLIED), ("globex", tenants.ROLLED_BACK)]
        assert has_column(made[0][1], "app") and not has_column(made[1][1], "app")
    finally:
        for name, _url in made:
            drop_database(name)




def test_tenants_are_read_from_the_file(migrations_dir):
    migration = write_migration(migrations_dir, MIGRATION)
    assert migration.tenants.schema_pattern == "tenant_*"
    copy = tenants.for_tenant(migration, tenants.Tenant("tenant_a", schema="tenant_a"))
    assert copy.name == "tenant_emails__tenant_a"
    assert {str(t) for t in copy.touched_tables()} == {"tenant_a.users"}
    assert {str(t) for t in migration.touched_tables()} == {"public.users"}  # the file's own
    assert tenants.like_pattern("tenant_*") == "tenant\\_%"
    (migrations_dir / "bad.yaml").write_text(MIGRATION.replace("tenant_emails", "bad").replace(
        '"tenant_*"', '"Tenant;drop"'))
    with pytest.raises(SpecError, match="tenants.schemas: must be a schema pattern"):
        load_migration(migrations_dir / "bad.yaml")
