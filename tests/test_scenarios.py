"""The shipped migrations (assets/) on the demo's tables (2,000 users and old_table rows, NULLs and
odd values). Each one's lifecycle, through the engine with its suites (as `verify` runs it):
up -> up again changes nothing -> down (ending with the backup proof) -> schema (pg_dump) and
every table's rows exactly as before -> up again; and all five in their depends_on order, then
down in reverse. Then, through the CLI (Dagster runs), the failures the scenarios promise:
duplicates after normalising, and legacyData that is not JSON, each failing validation with the
keys named and rolled back (exit 3)."""

from __future__ import annotations

from typing import Callable

import psycopg
import pytest

from migration_dags import cli
from migration_dags.demo_data import duplicate_email, seed
from migration_dags.engine import MigrationEngine
from migration_dags.migration_set import MigrationSet
from migration_dags.steps import STEPS
from migration_dags.suites.runner import make_suite_checks
from operations.lifecycle import assert_same, snapshot
from pg_server import REPO

ASSETS = str(REPO / "assets")
ROWS = 2_000


@pytest.fixture(autouse=True)
def home(dagster_home):
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


def cli_run(url: str, *argv: str) -> int:
    return cli.main(["--database-url", url, "--migrations-dir", ASSETS, "--quiet", *argv])


def one(conn: psycopg.Connection, sql: str):
    return conn.execute(sql).fetchone()[0]


# -- what each scenario leaves after up --------------------------------------------------------
def preferences_applied(conn):
    with_setting = one(conn, "SELECT count(*) FROM users WHERE theme IS NOT NULL OR notifications_enabled IS NOT NULL")
    assert 0 < with_setting < ROWS
    assert one(conn, "SELECT count(*) FROM user_preferences") == with_setting
    assert one(conn, "SELECT count(DISTINCT user_id) FROM user_preferences") == with_setting
    assert one(conn, """SELECT count(*) FROM user_preferences p JOIN users u ON u.id = p.user_id
                        WHERE p.preferences <> jsonb_build_object('theme', coalesce(u.theme, 'light'),
                              'notifications', coalesce(u.notifications_enabled, true))""") == 0
    assert one(conn, """SELECT count(*) FROM user_preferences
                        WHERE preferences = '{"theme": "light", "notifications": true}'""") > 0


def verification_applied(conn):
    assert one(conn, "SELECT count(*) FROM users WHERE created_at < now() - interval '30 days' "
                     "AND NOT email_verified") == 0


def roles_applied(conn):
    assert conn.execute("SELECT name FROM roles ORDER BY id").fetchall() == [("admin",), ("user",), ("guest",)]
    assert one(conn, "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id "
                     "WHERE r.name = 'user'") == ROWS
    assert {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'user_roles'")} >= {
        "idx_user_roles_user_id", "idx_user_roles_role_id"}


def old_table_applied(conn):
    assert one(conn, "SELECT count(*) FROM new_table") == ROWS
    assert one(conn, """SELECT count(*) FROM new_table n JOIN old_table o USING (id)
                        WHERE n.data IS DISTINCT FROM o."legacyData"::jsonb
                           OR n.user_id IS DISTINCT FROM o."userId" """) == 0


def email_swapped(conn):
    assert one(conn, "SELECT count(*) FROM users WHERE email <> lower(btrim(email))") == 0
    assert one(conn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                     "WHERE attrelid = 'users'::regclass AND attname = 'email'") == "character varying(320)"
    assert one(conn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email_key' "
                     "AND indexdef LIKE 'CREATE UNIQUE INDEX%'") == 1


SCENARIOS: dict[str, Callable[[psycopg.Connection], None]] = {
    "add_user_preferences": preferences_applied,
    "add_email_verification": verification_applied,
    "add_user_roles": roles_applied,
    "migrate_old_table": old_table_applied,
    "swap_user_email": email_swapped,
}


def engine(url: str, name: str) -> MigrationEngine:
    migration = MigrationSet.load(REPO / "assets").get(name)
    return MigrationEngine(migration, url, extra_checks=make_suite_checks())


def up(e: MigrationEngine) -> list[str | None]:
    """Every step up; the reason each was skipped (None: it ran)."""
    return [e.up(step).skipped_reason for step in STEPS]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_lifecycle(database_url, name):
    seed(database_url, ROWS)
    before = snapshot(database_url)
    e = engine(database_url, name)
    assert up(e) == [None] * len(STEPS)
    with psycopg.connect(database_url) as conn:
        SCENARIOS[name](conn)
    after_up = snapshot(database_url)
    assert up(e) == ["already applied"] * len(STEPS)  # up again: a no-op
    assert_same(after_up, snapshot(database_url), "after the second up")
    for step in reversed(STEPS):
        e.down(step)
    # the swap puts email back as the last column, which plan announced: only the order differs
    assert_same(before, snapshot(database_url), "after down", order_may_differ=name == "swap_user_email")
    with psycopg.connect(database_url) as conn:
        assert one(conn, "SELECT to_regnamespace('migration_dags') IS NULL")  # nothing of ours left
    assert up(e) == [None] * len(STEPS)
    with psycopg.connect(database_url) as conn:
        SCENARIOS[name](conn)


def test_all_five_in_order_and_back_in_reverse(database_url):
    """Their backups of `users` follow one another: each down proves the table against the shape
    the one before left, so they come down in reverse order (swap_user_email, which moves email to
    the last column on its down, comes first)."""
    seed(database_url, ROWS)
    before = snapshot(database_url)
    names = [m.name for m in MigrationSet.load(REPO / "assets").ordered() if m.name in SCENARIOS]
    assert sorted(names) == sorted(SCENARIOS)
    engines = [engine(database_url, name) for name in names]
    for e in engines:
        assert up(e) == [None] * len(STEPS), e.migration.name
    with psycopg.connect(database_url) as conn:
        for name in names:
            SCENARIOS[name](conn)
    for e in reversed(engines):
        for step in reversed(STEPS):
            e.down(step)
    assert_same(before, snapshot(database_url), "after every down", order_may_differ=True)


def test_duplicates_after_normalising_fail_before_the_swap(database_url, capsys):
    seed(database_url, ROWS)
    twin = duplicate_email(database_url, of_user=7)
    before = snapshot(database_url)
    assert cli_run(database_url, "up", "swap_user_email") == 3
    err = capsys.readouterr().err
    assert "users.email.unique (observed 2" in err
    assert f"email_new=user7@example.org: id=7; id={twin}" in err
    assert_same(before, snapshot(database_url), "after the rollback")


def test_legacy_data_that_is_not_json_fails_validation_naming_the_ids(database_url, capsys):
    seed(database_url, ROWS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("""UPDATE old_table SET "legacyData" = '{"broken": ' WHERE id IN (17, 1234)""")
    before = snapshot(database_url)
    assert cli_run(database_url, "up", "migrate_old_table") == 3
    err = capsys.readouterr().err
    assert "new_table.backfill_1.invalid_json (observed 2" in err and "id=17" in err and "id=1234" in err
    assert_same(before, snapshot(database_url), "after the rollback")
