"""backfill's insert form as a transform that merges: `upsert` (ON CONFLICT DO UPDATE on the key
of `into`) and `parse_json` (text parsed into jsonb, rows that do not parse skipped by the batch
and named by validation)."""

from __future__ import annotations

import psycopg
import pytest
from operations.lifecycle import (
    assert_unchanged_by,
    down_all,
    engine_for,
    run_lifecycle,
    run_sql,
    up_all,
    write_migration,
)
from operations.shop import migration

from migration_dags.errors import SchemaValidationError, SpecError, ValidationFailedError

LEGACY = """
CREATE TABLE old_table ("id" bigint PRIMARY KEY, "userId" bigint, "legacyData" text, "createdAt" timestamptz);
INSERT INTO old_table
SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE g * 10 END,
       CASE g % 6 WHEN 0 THEN NULL WHEN 1 THEN '{"a": ' || g || ', "nested": {"b": [1, null, "x"]}}'
                  WHEN 2 THEN ' null ' WHEN 3 THEN '"caf\\u00e9 \\"quoted\\""' WHEN 4 THEN '[]'
                  ELSE '  {"k": "v\\n", "n": 1.50e2}  ' END,
       '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour'
FROM generate_series(1, 300) g;
"""

TRANSFORM = """
- create_table:
    table: new_table
    columns:
      - {name: id, type: bigint, primary_key: true}
      - {name: user_id, type: bigint}
      - {name: data, type: jsonb}
      - {name: created_at, type: timestamptz}
      - {name: updated_at, type: timestamptz}
- backfill:
    table: old_table
    insert:
      into: new_table
      columns: [id, user_id, data, created_at, updated_at]
      select: 'SELECT o.id, o."userId", o."legacyData", o."createdAt", o."createdAt" FROM {rows} AS o'
      upsert: [id]
      parse_json: [data]
"""


def _count(conn, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def test_transform_with_upsert_and_json_round_trips(database_url, migrations_dir):
    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM new_table") == 300
        assert _count(conn, """SELECT count(*) FROM new_table n JOIN old_table o USING (id)
                               WHERE n.data IS DISTINCT FROM o."legacyData"::jsonb
                                  OR n.user_id IS DISTINCT FROM o."userId" """) == 0
        assert _count(conn, "SELECT count(*) FROM new_table WHERE data = 'null'::jsonb") == 50

    run_lifecycle(database_url, migrations_dir, migration("migrate_old", TRANSFORM), LEGACY,
                  after_up=after_up)


def test_a_rerun_after_the_source_changed_merges(database_url, migrations_dir, conn):
    """Rows already in new_table (an earlier run, an overlapping partition) get the new values."""
    run_sql(database_url, LEGACY)
    engine = engine_for(database_url, migrations_dir, migration("migrate_old", TRANSFORM))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    conn.execute("""UPDATE old_table SET "legacyData" = '{"changed": true}' WHERE id <= 10""")
    ctx = engine.context(conn)
    task = engine.backfill_tasks(ctx)[0]
    assert conn.execute(task.for_range("TRUE")).rowcount == 10  # only the changed rows
    assert conn.execute(task.for_range("TRUE")).rowcount == 0  # and then nothing
    assert _count(conn, """SELECT count(*) FROM new_table WHERE data = '{"changed": true}'""") == 10
    engine.up("validation")
    down_all(engine)


def test_rows_that_are_not_json_are_skipped_counted_and_named(database_url, migrations_dir, conn):
    run_sql(database_url, LEGACY + """
        UPDATE old_table SET "legacyData" = '{"a": 1' WHERE id IN (7, 205);
        UPDATE old_table SET "legacyData" = 'not json at all' WHERE id = 99;
        UPDATE old_table SET "legacyData" = '{"nul": "\\u0000"}' WHERE id = 150;""")
    engine = engine_for(database_url, migrations_dir, migration("migrate_old", TRANSFORM))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)  # the batches go on past the bad rows
    assert _count(conn, "SELECT count(*) FROM new_table") == 296
    with pytest.raises(ValidationFailedError) as caught:
        engine.up("validation")
    message = str(caught.value)
    assert "new_table.backfill_1.invalid_json (observed 4" in message
    for key in ("id=7", "id=99", "id=150", "id=205"):
        assert key in message
    down_all(engine)
    assert conn.execute("SELECT to_regclass('new_table')").fetchone() == (None,)


def test_upsert_into_an_existing_table_puts_updated_rows_back(database_url, migrations_dir):
    setup = LEGACY + """
        CREATE TABLE new_table (id bigint PRIMARY KEY, user_id bigint, data jsonb,
                                created_at timestamptz, updated_at timestamptz);
        INSERT INTO new_table VALUES (1, 1, '{"stale": true}', NULL, NULL), (1000, 5, '[]', NULL, NULL);"""

    def after_up(conn):
        assert _count(conn, "SELECT count(*) FROM new_table") == 301
        assert _count(conn, """SELECT count(*) FROM new_table WHERE data ? 'stale'""") == 0

    run_lifecycle(database_url, migrations_dir, migration("merge_old", """
        - backfill:
            table: old_table
            insert:
              into: new_table
              columns: [id, user_id, data, created_at, updated_at]
              select: 'SELECT o.id, o."userId", o."legacyData", o."createdAt", o."createdAt" FROM {rows} AS o'
              upsert: id
              parse_json: data
    """, "validation: {row_count: grows}"), setup, after_up=after_up)


@pytest.mark.parametrize("insert, error", [
    ("{into: new_table, columns: [id, data], select: 'SELECT o.id, o.x FROM {rows} o', upsert: [data]}",
     "primary key of public.new_table"),
    ("{into: new_table, columns: [id, note], select: 'SELECT o.id, o.x FROM {rows} o', parse_json: [note]}",
     "not jsonb"),
])
def test_upsert_and_parse_json_are_checked_against_the_table(database_url, migrations_dir, insert, error):
    run_sql(database_url, """CREATE TABLE src (id int PRIMARY KEY, x text);
                             CREATE TABLE new_table (id int PRIMARY KEY, data jsonb, note text);""")
    engine = engine_for(database_url, migrations_dir, migration("bad_transform", f"""
        - backfill: {{table: src, insert: {insert}}}
    """, "validation: {row_count: grows}"))
    caught = assert_unchanged_by(database_url, lambda: up_all(engine), SchemaValidationError)
    assert error in str(caught)


@pytest.mark.offline
@pytest.mark.parametrize("insert, found", [
    ("upsert: [nope]", "upsert[0]: 'nope' is not one of columns"),
    ("parse_json: [nope]", "parse_json[0]: 'nope' is not one of columns"),
    ("upsert: [id, data]", "nothing left to update"),
])
def test_malformed_transform_is_a_spec_error(migrations_dir, insert, found):
    with pytest.raises(SpecError) as caught:
        write_migration(migrations_dir, migration("bad", f"""
            - backfill:
                table: src
                insert: {{into: t, columns: [id, data], select: 'SELECT 1, 2 FROM {{rows}} r', {insert}}}
        """))
    assert found in str(caught.value)


def test_plan_shows_the_merge(database_url, migrations_dir):
    run_sql(database_url, LEGACY)
    plan = engine_for(database_url, migrations_dir, migration("migrate_old", TRANSFORM)).plan()
    text = "\n".join(plan["backfill"])
    assert 'ON CONFLICT ("id") DO UPDATE SET' in text and "IS DISTINCT FROM" in text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('new_table')").fetchone() == (None,)
