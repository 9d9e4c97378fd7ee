"""copy_cross_database: legacy_customers from MariaDB (a fresh database per test) or SQLite into
PostgreSQL customers, in key-range partitions; the lifecycle harness on both sources, validation
naming the partition a corrupted row is in, the source never written, bad values named by key."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import psycopg
import pytest

from legacy_sources import mariadb_source, sqlite_source
from migration_dags.cross_database.source import SourceDatabase, SourceTable
from migration_dags.errors import BackfillFailedError, SchemaValidationError, ValidationFailedError
from migration_dags.legacy_source import legacy_rows
from migration_dags.steps import STEPS
from operations.lifecycle import (
    assert_same, down_all, engine_for, run_lifecycle, snapshot, up_all,
)

ROWS = 1000
MIGRATION = """
name: copy_customers
settings: {batch_size: 150, partition_rows: 400}
operations:
  - create_table:
      table: customers
      columns:
        - {name: id, type: bigint, primary_key: true}
        - {name: full_name, type: text}
        - {name: email, type: text}
        - {name: signed_up_at, type: timestamptz}
        - {name: prefs, type: jsonb}
  - copy_cross_database:
      source: {url_env: LEGACY_DATABASE_URL}
      from: legacy_customers
      into: customers
      key: id
      columns:
        id: id
        full_name: full_name
        email: {from: email, transform: lower}
        signed_up_at: {from: signup_date, transform: utc}
        prefs: {from: prefs, transform: json}
"""


@pytest.fixture(params=["sqlite", "mariadb"])
def source(request, tmp_path, monkeypatch):
    src = sqlite_source(tmp_path, ROWS) if request.param == "sqlite" else mariadb_source(ROWS)
    monkeypatch.setenv("LEGACY_DATABASE_URL", src.url)
    try:
        yield src
    finally:
        src.drop()


@pytest.fixture
def sqlite(tmp_path, monkeypatch):
    src = sqlite_source(tmp_path, ROWS)
    monkeypatch.setenv("LEGACY_DATABASE_URL", src.url)
    return src


@pytest.fixture
def mariadb(monkeypatch):
    src = mariadb_source(ROWS)
    monkeypatch.setenv("LEGACY_DATABASE_URL", src.url)
    try:
        yield src
    finally:
        src.drop()


def _failing_backfill(database_url, migrations_dir, migration: str = MIGRATION):
    """The copy's engine, and the message of its backfill's failure."""
    engine = engine_for(database_url, migrations_dir, migration)
    engine.up("backup")
    engine.up("schema_change")
    with pytest.raises(BackfillFailedError) as failed:
        engine.up("backfill")
    return engine, str(failed.value)


def _expected(i: int) -> dict:
    return next(r for r in legacy_rows(i) if r["id"] == i)


def check_copied(conn: psycopg.Connection) -> None:
    assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == ROWS
    assert conn.execute("SELECT count(*) FROM customers WHERE email <> lower(email)").fetchone()[0] == 0
    for i in (1, 13, 53, 97, 101, 3, 5, 6):
        want = _expected(i)
        name, email, signed, prefs = conn.execute(
            "SELECT full_name, email, signed_up_at, prefs::text FROM customers WHERE id = %s",
            (i,)).fetchone()
        assert name == want["full_name"]
        assert email == (want["email"].lower() if want["email"] else None)
        stamp = want["signup_date"]
        assert signed == (None if stamp is None else datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc))
        text = want["prefs"]
        assert (prefs is None) == (text is None)  # the JSON null stays JSON, SQL NULL stays NULL
        if text is not None:
            assert json.loads(prefs) == json.loads(text)


def test_lifecycle_copies_every_row_transformed_and_down_deletes_them(
        database_url, migrations_dir, source):
    before = source.fingerprint()
    run_lifecycle(database_url, migrations_dir, MIGRATION, after_up=check_copied)
    assert source.fingerprint() == before, "the source changed"


def test_a_corrupted_row_fails_validation_naming_its_partition(database_url, migrations_dir, source):
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    before = snapshot(database_url)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    assert len(engine.partitions()) == 3  # (,400] (400,800] (800,)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET email = 'someone@else.example' WHERE id = 555")
    with pytest.raises(ValidationFailedError) as failed:
        engine.up("validation")
    message = str(failed.value)
    assert "partition 00-00001 (id > 400 and <= 800)" in message
    assert "id 555 differs" in message
    assert "00-00000" not in message and "00-00002" not in message
    for step in ("backfill", "schema_change", "backup"):
        engine.down(step)
    assert_same(before, snapshot(database_url), "after down")


def test_rows_missing_from_or_extra_on_the_target_are_named(database_url, migrations_dir, sqlite):
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM customers WHERE id = 10")
        conn.execute("INSERT INTO customers (id, email) VALUES (5000, 'extra@example.com')")
    with pytest.raises(ValidationFailedError) as failed:
        engine.up("validation")
    message = str(failed.value)
    assert "partition 00-00000 (id <= 400): source 400 rows" in message
    assert "target 399 rows" in message and "id 10 missing from the target" in message
    assert "partition 00-00002 (id > 800): source 200 rows" in message
    assert "5000 not in the source" in message
    assert "00-00001" not in message


def test_the_source_connection_refuses_writes(source):
    before = source.fingerprint()
    db = SourceDatabase("LEGACY_DATABASE_URL", "test")
    import sqlalchemy as sa

    with db.connect() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.execute(sa.text("DELETE FROM legacy_customers"))
        conn.commit()
    with db.connect() as conn:
        assert db.rows(conn, SourceTable("legacy_customers"), ["id"], "id", None, None, 5) == [
            (1,), (2,), (3,), (4,), (5,)]
    db.dispose()
    assert source.fingerprint() == before


def test_a_value_the_target_cannot_take_fails_its_batch_naming_the_key(
        database_url, migrations_dir, sqlite):
    sqlite.execute("UPDATE legacy_customers SET prefs = '{not json' WHERE id = 700")
    engine, message = _failing_backfill(database_url, migrations_dir)
    assert "partition 00-00001" in message and "first failing key (700)" in message
    assert "column prefs" in message
    with psycopg.connect(database_url) as conn:  # batches before it stay: ..400, 401..550
        assert conn.execute("SELECT max(id), count(*) FROM customers").fetchone() == (550, 550)
    sqlite.execute("UPDATE legacy_customers SET prefs = '{}' WHERE id = 700")
    engine.up("backfill")  # resumes after 550
    engine.up("validation")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM customers").fetchone() == (ROWS, ROWS)


def test_a_source_changed_after_the_copy_fails_validation(database_url, migrations_dir, sqlite):
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    sqlite.execute("UPDATE legacy_customers SET full_name = 'Renamed' WHERE id = 901")
    with pytest.raises(ValidationFailedError, match=r"partition 00-00002 \(id > 800\).*id 901 differs"):
        engine.up("validation")


def test_the_source_must_be_named_and_hold_the_columns(database_url, migrations_dir, sqlite,
                                                       monkeypatch):
    engine = engine_for(database_url, migrations_dir, MIGRATION.replace("id: id\n", "id: id\n        nickname: full_name\n"))
    with pytest.raises(SchemaValidationError, match="column 'nickname' does not exist in table"):
        engine.plan()
    engine = engine_for(database_url, migrations_dir, MIGRATION.replace("from: email", "from: mail"))
    with pytest.raises(SchemaValidationError,
                       match=r"operations\[1\].copy_cross_database.columns.email: column 'mail' "
                             "does not exist in the source table legacy_customers"):
        engine.plan()
    monkeypatch.delenv("LEGACY_DATABASE_URL")
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    with pytest.raises(SchemaValidationError, match=r"source.url_env: .*LEGACY_DATABASE_URL, which is not set"):
        engine.up("backup")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('customers')").fetchone()[0] is None


def test_plan_offline_shows_the_read_and_the_upsert(migrations_dir, monkeypatch):
    monkeypatch.delenv("LEGACY_DATABASE_URL", raising=False)
    engine = engine_for("", migrations_dir, MIGRATION)
    plan = engine.plan(offline=True)
    backfill = "\n".join(plan["backfill"])
    assert "FROM legacy_customers" in backfill and "$LEGACY_DATABASE_URL" in backfill
    assert "ON CONFLICT (\"id\") DO UPDATE" in backfill
    assert set(STEPS) <= set(plan)


def test_a_mariadb_zero_date_is_named_and_utc_zero_null_copies_it_as_null(
        database_url, migrations_dir, mariadb):
    mariadb.execute("UPDATE legacy_customers SET signup_date = '0000-00-00 00:00:00' WHERE id = 700")
    engine, message = _failing_backfill(database_url, migrations_dir)
    assert ("column signed_up_at: source value '0000-00-00 00:00:00' (signup_date): year 0 is "
            "out of range (a MariaDB/MySQL zero date: `transform: utc_zero_null` copies it as "
            "NULL); first failing key (700)") in message
    down_all(engine)
    zero_null = MIGRATION.replace("transform: utc}", "transform: utc_zero_null}")
    engine = engine_for(database_url, migrations_dir, zero_null)
    up_all(engine)  # validation compares both sides through the same transform: passes
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT signed_up_at FROM customers WHERE id = 700").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM customers").fetchone() == (ROWS,)
    down_all(engine)
