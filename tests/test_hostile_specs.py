"""Nothing a spec does can cost data: hostile specs are refused at `plan` with exit 2, before any
database work, and the database is left as it was (issue 10)."""

from __future__ import annotations

import textwrap

import psycopg
import pytest

from migration_dags import cli
from operations.lifecycle import quick_snapshot

USERS = """
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO users SELECT g, 'u' || g || '@x', now() - g * interval '1 day' FROM generate_series(1, 20) g;
CREATE SCHEMA app;
CREATE FUNCTION app.evil(bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION public.lower(bigint) RETURNS text LANGUAGE sql AS 'SELECT ''x''';
"""


@pytest.fixture(autouse=True)
def no_embedded_server(monkeypatch, dagster_home):
    monkeypatch.setenv("MIGRATION_DAGS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x")


@pytest.fixture
def users_url(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(USERS)
    return database_url


def state(url: str) -> tuple:
    with psycopg.connect(url, autocommit=True) as conn:
        schemas = conn.execute("SELECT array_agg(nspname ORDER BY nspname) FROM pg_namespace").fetchone()
        return quick_snapshot(conn), schemas


def plan(capsys, folder, url, body: str) -> tuple[int, str, str]:
    (folder / "m.yaml").write_text("name: m\n" + textwrap.dedent(body))
    code = cli.main(["plan", "m", "--migrations-dir", str(folder), "--database-url", url])
    out, err = capsys.readouterr()
    return code, out, err


REFUSED = {
    # the two injections found in trials
    "default_injection": ("""
        operations:
          - add_column: {table: users, column: {name: ok, type: boolean, default: "false; drop table users"}}
        """, "operations[0].add_column.column.default"),
    "where_escapes_parentheses": ("""
        operations:
          - add_column: {table: users, column: {name: ok, type: boolean}}
          - backfill: {table: users, set: {ok: 'true'}, where: "id < 3) or (true"}
        """, "operations[1].backfill.where"),
    # caught only by the live catalog
    "unknown_column": ("""
        operations:
          - add_column: {table: users, column: {name: ok, type: boolean}, up: "verified_at IS NOT NULL"}
        """, "operations[0].add_column.up"),
    "type_error": ("""
        operations:
          - backfill: {table: users, set: {created_at: "email + 1"}}
        """, "operations[0].backfill.set.created_at"),
    "condition_not_boolean": ("""
        operations:
          - add_check: {table: users, name: k, check: "id * 2"}
        """, "operations[0].add_check.check"),
    "bad_default": ("""
        operations:
          - add_column: {table: users, column: {name: n, type: int, default: "'many'"}}
        """, "operations[0].add_column.column.default"),
    "shadowed_builtin": ("""
        operations:
          - add_column: {table: users, column: {name: l, type: text}, up: "lower(id)"}
        """, "operations[0].add_column.up"),
    "user_function": ("""
        operations:
          - backfill: {table: users, set: {email: "CASE WHEN app.evil(id) THEN email END"}}
        """, "operations[0].backfill.set.email"),
    "side_effect": ("""
        operations:
          - backfill: {table: users, set: {email: "email || pg_terminate_backend(pg_backend_pid())::text"}}
        """, "operations[0].backfill.set.email"),
    "insert_select_unknown_column": ("""
        operations:
          - create_table: {table: emails, columns: [{name: id, type: bigint, primary_key: true}]}
          - backfill:
              table: users
              insert: {into: emails, columns: [id], select: "SELECT u.nope FROM {rows} AS u"}
        """, "operations[1].backfill.insert.select"),
    "alter_down_wrong": ("""
        operations:
          - alter_column: {table: users, column: email, type: text, up: "email || ''", down: "email - 1"}
        """, "operations[0].alter_column.down"),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_hostile_or_broken_spec_is_refused_at_plan_and_changes_nothing(capsys, migrations_dir,
                                                                         users_url, case):
    body, field = REFUSED[case]
    before = state(users_url)

    code, out, err = plan(capsys, migrations_dir, users_url, body)

    assert code == 2, err
    assert out == ""
    (line,) = [line for line in err.splitlines() if line.startswith("migration-dags: error:")]
    assert f"{field}: " in line, line
    assert state(users_url) == before


def test_a_good_spec_plans_and_a_column_added_earlier_can_be_used(capsys, migrations_dir, users_url):
    before = state(users_url)
    code, out, err = plan(capsys, migrations_dir, users_url, """
        operations:
          - add_column: {table: users, column: {name: domain, type: text}, up: "split_part(email, '@', 2)"}
          - backfill: {table: users, set: {domain: "upper(domain)"}, where: "users.domain IS NOT NULL"}
          - add_check: {table: users, name: domain_set, check: "domain <> ''"}
          - alter_column: {table: users, column: email, type: varchar(200), up: "email::varchar(200)", down: "email::text"}
          - create_index: {name: users_recent, table: users, columns: [created_at], where: "created_at > '2020-01-01'"}
        """)
    assert code == 0, err
    assert "split_part(email, '@', 2)" in out
    assert state(users_url) == before


def test_allow_functions_lets_a_user_function_through(capsys, migrations_dir, users_url):
    code, _out, err = plan(capsys, migrations_dir, users_url, """
        allow_functions: [app.evil]
        operations:
          - backfill: {table: users, set: {email: "CASE WHEN app.evil(id) THEN email END"}}
        """)
    assert code == 0, err


def test_raw_sql_lists_each_statement_in_plan(capsys, migrations_dir, users_url):
    code, out, err = plan(capsys, migrations_dir, users_url, """
        tables: [users]
        operations:
          - raw_sql:
              up: "CREATE VIEW recent AS SELECT * FROM users; COMMENT ON VIEW recent IS 'a;b'"
              down: "DROP VIEW IF EXISTS recent"
        """)
    assert code == 0, err
    assert "-- raw SQL (up): 2 statements" in out
    assert "-- statement 1 of 2\nCREATE VIEW recent AS SELECT * FROM users\n;" in out
    assert "-- statement 2 of 2\nCOMMENT ON VIEW recent IS 'a;b';" in out


def test_after_a_raw_sql_later_expressions_are_checked_at_load_only(capsys, migrations_dir, users_url):
    """A raw_sql may create what later operations use (a type here): the live catalog does not
    have it yet, so their expressions are not checked against it."""
    code, _out, err = plan(capsys, migrations_dir, users_url, """
        operations:
          - raw_sql: {up: "CREATE TYPE mood AS ENUM ('ok', 'sad')", down: "DROP TYPE IF EXISTS mood"}
          - add_column: {table: users, column: {name: m, type: mood, default: "'ok'"}}
        """)
    assert code == 0, err
