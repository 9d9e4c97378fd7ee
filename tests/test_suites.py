"""Suites (GX suite JSON in expectations/) run in PostgreSQL: pass, fail with keys, per partition,
bad files, and the SQL path giving GX's own results.  GX is imported once (~5 s) for the module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from migration_dags.engine import MigrationEngine
from migration_dags.errors import SpecError
from migration_dags.spec import load_migration
from migration_dags.suites import (
    LazyGx, Scope, load_suite, make_suite_checks, run_suite, suite_checks, whole_table,
)
from migration_dags.suites import sql_path
from migration_dags.suites.gx_path import sqlalchemy_url
from migration_dags.suites.scope import key_row_sql
from pg_server import SERVER_URL

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "assets" / "add_email_verification.yaml"
NULL_CREATED = (17, 42, 1999, 2500)  # users whose created_at is NULL: the backfill leaves NULL

VERIFY_USERS = """
name: verify_users
tables: [users]
settings: {batch_size: 250, partition_rows: 1000}
validation: {suites: [users_checks]}
operations:
  - add_column:
      table: users
      column: {name: email_verified, type: boolean}
  - backfill:
      table: users
      set: {email_verified: "created_at < '2026-01-01'"}
"""

USERS_CHECKS = {
    "name": "users_checks",
    "meta": {"migration_dags": {"table": "users"}},
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email_verified"}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "email_verified", "value_set": [True, False]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "verification_token"}},
    ],
}


def seed_users(conn, rows=3000, null_created=()):
    conn.execute("""CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL,
                    created_at timestamptz, verification_token text)""")
    conn.execute(
        """INSERT INTO users SELECT g, 'u' || g || '@example.com',
             now() - (g %% 90) * interval '1 day' - interval '1 hour',
             CASE WHEN g %% 3 = 0 THEN md5(g::text) END
           FROM generate_series(1, %s) g""", (rows,))
    if null_created:
        conn.execute("UPDATE users SET created_at = NULL WHERE id = ANY(%s)", (list(null_created),))


def write_suite(folder: Path, suite: dict) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{suite['name']}.json"
    path.write_text(json.dumps(suite, indent=2))
    return path


def by_name(outcomes):
    return {o.name.split(".", 1)[1]: o for o in outcomes}


def comparable(outcomes):
    """Outcomes as compared across paths: over 20 offending rows, which 20 are sampled may differ
    (GX takes them in scan order, we take the smallest keys), so only their number is compared."""
    return [(o.name, o.description, o.passed, o.observed,
             sorted(o.samples) if not isinstance(o.observed, int) or o.observed <= 20 else len(o.samples),
             o.suite) for o in outcomes]


@pytest.fixture
def verify_users(conn, database_url, migrations_dir, tmp_path):
    """The verify_users migration applied up to its backfill, on users with NULLs left behind."""
    seed_users(conn, null_created=NULL_CREATED)
    folder = tmp_path / "expectations"
    write_suite(folder, USERS_CHECKS)
    path = migrations_dir / "verify_users.yaml"
    path.write_text(VERIFY_USERS)
    engine = MigrationEngine(load_migration(path), database_url,
                             extra_checks=make_suite_checks(folder))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    return engine


# -- the shipped demo ---------------------------------------------------------------------------
def test_demo_suite_passes_after_the_demo_migration(conn, database_url, monkeypatch):
    seed_users(conn)
    conn.execute("ALTER TABLE users DROP COLUMN verification_token")  # the migration adds it
    monkeypatch.delenv("MIGRATION_DAGS_EXPECTATIONS_DIR", raising=False)
    monkeypatch.chdir(REPO)
    engine = MigrationEngine(load_migration(DEMO), database_url, extra_checks=suite_checks)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    outcomes = suite_checks(engine, conn, None)
    assert [o.name for o in outcomes] == [
        "users_email_verification.expect_table_row_count_to_be_between",
        "users_email_verification.expect_column_values_to_not_be_null[email_verified]",
        "users_email_verification.expect_column_values_to_be_in_set[email_verified]",
        "users_email_verification.expect_column_values_to_be_unique[verification_token]",
        "users_email_verification.unexpected_rows_expectation",
    ]
    assert all(o.passed for o in outcomes), [o.as_dict() for o in outcomes if not o.passed]
    assert outcomes[0].observed == 3000 and outcomes[1].observed == 0
    assert {o.suite for o in outcomes} == {"users_email_verification"}
    # every expectation of the demo suite runs on the SQL path: no GX needed
    suite = load_suite("users_email_verification", REPO / "expectations")
    plans, rest = sql_path.compile_plans(conn, list(suite.expectations), whole_table(conn, suite))
    assert rest == [] and len(plans) == 5
    # and the engine's validation step passes with it
    engine.up("validation")


def test_demo_suite_catches_old_users_left_unverified(conn, database_url, monkeypatch):
    seed_users(conn)
    conn.execute("ALTER TABLE users DROP COLUMN verification_token")
    monkeypatch.chdir(REPO)
    engine = MigrationEngine(load_migration(DEMO), database_url)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    conn.execute("UPDATE users SET email_verified = false WHERE id IN (40, 41, 2000)")  # 40 and 41 days old
    conn.execute("UPDATE users SET verification_token = 'same' WHERE id IN (7, 8)")
    for mode in ("auto", "gx"):
        got = by_name(make_suite_checks(mode=mode)(engine, conn, None))
        old = got["unexpected_rows_expectation"]
        assert not old.passed and old.observed == 2 and sorted(old.samples) == ["40", "41"]
        dup = got["expect_column_values_to_be_unique[verification_token]"]
        assert not dup.passed and dup.observed == 2 and sorted(dup.samples) == ["7", "8"]


# -- failing, per partition -------------------------------------------------------------------------
def test_nulls_left_by_a_backfill_fail_with_observed_count_and_sample_keys(verify_users, conn):
    got = by_name(verify_users.run_checks(conn))
    nulls = got["expect_column_values_to_not_be_null[email_verified]"]
    assert not nulls.passed
    assert nulls.observed == len(NULL_CREATED)
    assert nulls.samples == [str(k) for k in NULL_CREATED]  # keys, smallest first
    assert got["expect_column_values_to_be_in_set[email_verified]"].passed  # NULLs are not "in set" failures
    assert got["expect_table_row_count_to_be_between"].observed == 3000


def test_per_partition_runs_see_only_their_key_range(verify_users, conn):
    partitions = verify_users.partitions()
    assert partitions == ["00-00000", "00-00001", "00-00002"]
    seen = {}
    for key in partitions:
        outcomes = verify_users.extra_checks(verify_users, conn, key)
        names = [o.name.split(".", 1)[1] for o in outcomes]
        assert "expect_table_row_count_to_be_between" not in names  # table-level: whole table only
        assert all(f"(partition {key})" in o.description for o in outcomes)
        nulls = by_name(outcomes)["expect_column_values_to_not_be_null[email_verified]"]
        seen[key] = (nulls.observed, nulls.samples)
    assert seen == {"00-00000": (2, ["17", "42"]), "00-00001": (1, ["1999"]),
                    "00-00002": (1, ["2500"])}


def test_a_partition_of_another_table_runs_no_suite(verify_users, conn, tmp_path):
    conn.execute("CREATE TABLE other (id int PRIMARY KEY)")
    write_suite(tmp_path / "expectations", {**USERS_CHECKS, "meta": {"migration_dags": {"table": "other"}}})
    assert verify_users.extra_checks(verify_users, conn, "00-00000") == []


# -- bad suite files ---------------------------------------------------------------------------------
def test_missing_suite_file_is_a_one_line_error_naming_it(tmp_path):
    with pytest.raises(SpecError) as err:
        load_suite("nope", tmp_path)
    assert err.value.file == str(tmp_path / "nope.json")
    assert "\n" not in str(err.value) and "not found" in str(err.value)


def test_malformed_json_names_file_and_line(tmp_path):
    (tmp_path / "broken.json").write_text('{\n  "name": "broken",\n  "expectations": [,]\n}')
    with pytest.raises(SpecError) as err:
        load_suite("broken", tmp_path)
    assert err.value.file.endswith("broken.json") and err.value.field == "line 3"
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("change, field", [
    ({"meta": {}}, "meta.migration_dags"),
    ({"meta": {"migration_dags": {"table": "users", "tabel": "x"}}}, "meta.migration_dags.tabel"),
    ({"name": "other"}, "name"),
    ({"expectations": []}, "expectations"),
    ({"expectations": [{"kwargs": {}}]}, "expectations[0].type"),
    ({"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": []}]}, "expectations[0].kwargs"),
])
def test_malformed_suite_names_the_field(tmp_path, change, field):
    (tmp_path / "users_checks.json").write_text(json.dumps({**USERS_CHECKS, **change}))
    with pytest.raises(SpecError) as err:
        load_suite("users_checks", tmp_path)
    assert err.value.field == field


@pytest.mark.parametrize("expectation", [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email", "colum": "x"}},
    {"type": "expect_no_such_thing", "kwargs": {"column": "email"}},
])
def test_expectations_gx_rejects_name_their_place_in_the_file(conn, database_url, tmp_path, expectation):
    seed_users(conn, rows=10)
    suite = {**USERS_CHECKS, "expectations": [USERS_CHECKS["expectations"][0], expectation]}
    write_suite(tmp_path, suite)
    loaded = load_suite("users_checks", tmp_path)
    with pytest.raises(SpecError) as err, LazyGx(database_url) as gx:
        run_suite(conn, loaded, whole_table(conn, loaded), gx)
    assert err.value.field == "expectations[1]" and err.value.file.endswith("users_checks.json")
    assert "\n" not in str(err.value)


# -- the SQL path gives GX's results ---------------------------------------------------------------
ITEMS_SUITE = {
    "name": "items_checks",
    "meta": {"migration_dags": {"table": "public.items"}},
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10, "max_value": 5000}},
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 1999}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku", "mostly": 0.99}},
        {"type": "expect_column_values_to_be_null", "kwargs": {"column": "deleted_at", "mostly": 0.5}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "status", "value_set": ["new", "paid", "shipped"]}},
        {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "qty", "value_set": [0, -1]}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "price", "min_value": 0, "max_value": 100.5, "strict_min": True}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "qty", "max_value": 50}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "gift", "value_set": [True]}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "sku"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "code", "mostly": 0.9}},
        {"type": "unexpected_rows_expectation",
         "kwargs": {"unexpected_rows_query": "SELECT id, price FROM {batch} WHERE price > 99 AND qty > 40"}},
        {"type": "unexpected_rows_expectation",
         "kwargs": {"unexpected_rows_query":
                    "SELECT status, count(*) AS n FROM {batch} GROUP BY status HAVING count(*) < 5"}},
    ],
}


def seed_items(conn):
    conn.execute("""CREATE TABLE items (id int PRIMARY KEY, sku text, status text, qty int,
                    price numeric(8,2), gift boolean, code text, deleted_at timestamptz)""")
    conn.execute("""INSERT INTO items SELECT g, 'sku-' || g, (ARRAY['new','paid','shipped'])[1 + g % 3],
                      g % 45 + 1, (g % 100) + 0.5, g % 2 = 0, 'c' || (g % 1900),
                      CASE WHEN g % 4 = 0 THEN now() END
                    FROM generate_series(1, 1999) g""")
    conn.execute("UPDATE items SET sku = NULL WHERE id IN (5, 6)")
    conn.execute("UPDATE items SET sku = 'sku-10' WHERE id IN (11, 12)")
    conn.execute("UPDATE items SET status = 'lost' WHERE id IN (100, 1500)")
    conn.execute("UPDATE items SET qty = 0 WHERE id = 700")
    conn.execute("UPDATE items SET qty = 60 WHERE id IN (800, 801)")
    conn.execute("UPDATE items SET price = 0 WHERE id IN (900, 1901)")
    conn.execute("UPDATE items SET gift = NULL WHERE id = 3")


@pytest.mark.parametrize("where", [None, "ROW(id) > ROW(500) AND ROW(id) <= ROW(1600)"])
def test_sql_path_matches_gx_on_the_same_data(conn, database_url, tmp_path, where):
    seed_items(conn)
    write_suite(tmp_path, ITEMS_SUITE)
    suite = load_suite("items_checks", tmp_path)
    scope = whole_table(conn, suite)
    if where:
        scope = Scope(scope.table, scope.key, where, "p1")
    plans, rest = sql_path.compile_plans(conn, list(suite.expectations), scope)
    assert rest == []  # every expectation above really takes the SQL path
    with LazyGx(database_url) as gx:
        ours = run_suite(conn, suite, scope, gx, mode="auto")
        theirs = run_suite(conn, suite, scope, gx, mode="gx")
    assert comparable(ours) == comparable(theirs)
    assert {o.passed for o in ours} == {True, False}  # both kinds of verdict are compared
    got = by_name(ours)
    assert got["expect_column_values_to_be_unique[sku]"].samples == ([] if where else ["10", "11", "12"])
    gift = got["expect_column_values_to_be_in_set[gift]"]
    first = range(501, 541, 2) if where else [1, *range(5, 43, 2)]  # id 3's gift is NULL
    assert gift.samples == [str(k) for k in first]


@pytest.mark.filterwarnings("ignore:.*row_condition:DeprecationWarning", "ignore:.*condition_parser:DeprecationWarning")
def test_unsupported_expectations_fall_back_to_gx(conn, database_url, tmp_path):
    seed_items(conn)
    suite_json = {**ITEMS_SUITE, "expectations": [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "sku", "regex": "^sku-[0-9]+$"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku", "row_condition": 'col("id")>10',
                                                                    "condition_parser": "great_expectations"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "qty", "value_set": ["1"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"}},
    ]}
    write_suite(tmp_path, suite_json)
    suite = load_suite("items_checks", tmp_path)
    scope = whole_table(conn, suite)
    plans, rest = sql_path.compile_plans(conn, list(suite.expectations), scope)
    assert [p.exp.index for p in plans] == [3] and [e.index for e in rest] == [0, 1, 2]
    with LazyGx(database_url) as gx:
        got = run_suite(conn, suite, scope, gx)
    assert [o.name for o in got] == [e.name for e in suite.expectations]
    regex = got[0]
    assert regex.passed and regex.observed == 0
    assert not got[3].passed and got[3].samples == ["5", "6"]


def test_a_missing_column_is_a_failed_outcome_not_a_crash(conn, database_url, tmp_path):
    seed_items(conn)
    write_suite(tmp_path, {**ITEMS_SUITE, "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sku"}},
    ]})
    suite = load_suite("items_checks", tmp_path)
    with LazyGx(database_url) as gx:
        got = run_suite(conn, suite, whole_table(conn, suite), gx)
    assert not got[0].passed and str(got[0].observed).startswith("error:")
    assert not got[1].passed and got[1].observed == 2


def test_a_missing_table_fails_every_expectation(conn, database_url, tmp_path):
    write_suite(tmp_path, ITEMS_SUITE)
    suite = load_suite("items_checks", tmp_path)
    with LazyGx(database_url) as gx:
        got = run_suite(conn, suite, Scope(suite.table, ()), gx)
    assert len(got) == len(ITEMS_SUITE["expectations"]) and not any(o.passed for o in got)
    assert got[0].observed == "error: table public.items does not exist"


# -- connecting GX -------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("postgresql://postgres:@/postgres?host=/tmp/pg", "postgresql+psycopg://postgres@localhost/postgres?host=%2Ftmp%2Fpg"),
    ("postgresql://postgres@127.0.0.1:5432/db", "postgresql+psycopg://postgres@127.0.0.1:5432/db"),
    ("postgresql+psycopg2://u:p%40ss@h/db?sslmode=require", "postgresql+psycopg://u:p%40ss@h/db?sslmode=require"),
    ("host=/var/run/postgresql dbname=x user=postgres", "postgresql+psycopg://postgres@localhost/x?host=%2Fvar%2Frun%2Fpostgresql"),
])
def test_libpq_urls_become_urls_gx_accepts(url, expected, monkeypatch):
    monkeypatch.setenv("MIGRATION_DAGS_PARALLEL", "server")  # the server's parallel settings
    assert sqlalchemy_url(url) == expected


def test_gx_sessions_leave_parallel_workers_to_the_application(monkeypatch):
    monkeypatch.delenv("MIGRATION_DAGS_PARALLEL", raising=False)
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url("postgresql://u@h/db?options=-c%20work_mem%3D64MB"))
    assert url.query["options"] == ("-c work_mem=64MB -c max_parallel_workers_per_gather=0 "
                                    "-c max_parallel_maintenance_workers=0")


def _server_socket_dir() -> str | None:
    """The unix-socket folder of the test server: its own host if it is one (the embedded
    server), else Debian's /var/run/postgresql when that folder holds the server's socket."""
    params = psycopg.conninfo.conninfo_to_dict(SERVER_URL)
    host, port = params.get("host") or "", params.get("port") or "5432"
    if host.startswith("/"):
        return host
    if host in ("127.0.0.1", "localhost") and os.path.exists(f"/var/run/postgresql/.s.PGSQL.{port}"):
        return "/var/run/postgresql"
    return None


@pytest.mark.skipif(_server_socket_dir() is None, reason="the test server has no local socket")
def test_gx_runs_through_a_unix_socket_url_and_keys_with_colons(conn, database_url, tmp_path):
    conn.execute("CREATE TABLE tags (name text PRIMARY KEY, label text)")
    conn.execute("INSERT INTO tags VALUES ('a:1', 'x'), ('b:2', NULL), ('c%3', NULL), ('d:4', NULL)")
    write_suite(tmp_path, {"name": "tags", "meta": {"migration_dags": {"table": "tags"}}, "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}}]})
    suite = load_suite("tags", tmp_path)
    db = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    port = psycopg.conninfo.conninfo_to_dict(SERVER_URL).get("port") or "5432"
    socket_url = f"postgresql://postgres:@/{db}?host={_server_socket_dir()}&port={port}"
    where = f"ROW(name) > {key_row_sql(['a:1'], ['text'])} AND ROW(name) <= {key_row_sql(['c%3'], ['text'])}"
    scope = Scope(suite.table, ("name",), where, "p")
    with LazyGx(socket_url) as gx:
        got = run_suite(conn, suite, scope, gx, mode="gx")
        assert got[0].observed == 2 and sorted(got[0].samples) == ["b:2", "c%3"]
        assert comparable(run_suite(conn, suite, scope, gx)) == comparable(got)
