"""raw_sql through the lifecycle, and steps that fail midway undoing their own partial work."""

from __future__ import annotations

import pytest
from operations.lifecycle import (
    assert_same,
    assert_unchanged_by,
    engine_for,
    run_lifecycle,
    run_sql,
    snapshot,
)
from operations.shop import SHOP, migration

from migration_dags.errors import SchemaValidationError, SpecError, StepFailedError, TableDoesNotExistError


def test_raw_sql_at_start_and_at_cutover(database_url, migrations_dir):
    def after_up(conn):
        assert conn.execute("SELECT count(*) FROM paid_orders").fetchone()[0] == 100
        comment = conn.execute("SELECT obj_description('orders'::regclass)").fetchone()[0]
        assert comment == "orders, one row each"

    run_lifecycle(database_url, migrations_dir, migration("raw_view", """
        - raw_sql:
            table: orders
            up: "CREATE OR REPLACE VIEW paid_orders AS SELECT id, total FROM orders WHERE status = 'paid'"
            down: "DROP VIEW IF EXISTS paid_orders"
        - raw_sql:
            tables: [orders]
            step: complete
            up: "COMMENT ON TABLE orders IS 'orders, one row each'"
            down: "COMMENT ON TABLE orders IS NULL"
    """), SHOP, after_up=after_up)


def test_raw_sql_outside_a_transaction(database_url, migrations_dir):
    def after_up(conn):
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_note_idx'::regclass").fetchone()
        assert valid == (True,)

    run_lifecycle(database_url, migrations_dir, migration("raw_concurrently", """
        - raw_sql:
            table: orders
            transactional: false
            up: "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_note_idx ON orders (note)"
            down: "DROP INDEX CONCURRENTLY IF EXISTS orders_note_idx"
    """), SHOP, after_up=after_up)


def test_a_start_failing_after_earlier_operations_undoes_them(database_url, migrations_dir):
    """The third operation fails; the column, trigger and index the first two made are undone."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("fails_midway", """
        - add_column:
            table: orders
            column: {name: is_paid, type: boolean}
            up: "status = 'paid'"
        - create_index: {name: orders_status_idx, table: orders, columns: [status]}
        - raw_sql:
            table: orders
            up: "UPDATE orders SET total = total / 0"
            down: "SELECT 1"
    """))
    engine.up("backup")
    error = assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)
    assert "division by zero" in str(error)
    assert engine.status().is_applied("schema_change") is False
    engine.down("backup")  # proves the tables equal their backup


def test_a_cutover_failing_after_earlier_completes_undoes_them(database_url, migrations_dir):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("cutover_fails", """
        - rename_column: {table: orders, from: note, to: remark}
        - drop_column: {table: customers, column: created_at}
        - raw_sql:
            table: orders
            step: complete
            up: "ALTER TABLE orders ADD CONSTRAINT never CHECK (false)"
            down: "ALTER TABLE orders DROP CONSTRAINT IF EXISTS never"
    """))
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    before = snapshot(database_url)
    with pytest.raises(StepFailedError, match="never"):
        engine.up("cutover")
    assert_same(before, snapshot(database_url), "after the failed cutover")
    for step in ("validation", "backfill", "schema_change", "backup"):
        engine.down(step)


def test_a_raw_sql_without_down_is_refused_at_load(migrations_dir):
    with pytest.raises(SpecError) as caught:
        engine_for("postgresql://unused", migrations_dir, migration("no_down", """
            - raw_sql: {up: "CREATE TABLE t (id int)"}
        """))
    assert caught.value.field == "operations[0].raw_sql.down"


def test_a_raw_sql_step_must_be_start_or_complete(migrations_dir):
    with pytest.raises(SpecError, match="start or complete"):
        engine_for("postgresql://unused", migrations_dir, migration("bad_step", """
            - raw_sql: {up: "SELECT 1", down: "SELECT 1", step: backfill}
        """))


def test_a_raw_sql_naming_a_missing_table_is_refused(database_url, migrations_dir):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("raw_missing", """
        - raw_sql: {tables: [orders, nowhere], up: "SELECT 1", down: "SELECT 1"}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), TableDoesNotExistError)
    assert error.table == "public.nowhere"


VIEWS = """
CREATE TABLE prices (id int PRIMARY KEY, amount numeric(4,2) NOT NULL, label text);
INSERT INTO prices SELECT g, (g % 97) + 0.25, 'p' || g FROM generate_series(1, 120) g;
CREATE VIEW cheap AS SELECT id, amount FROM prices WHERE amount < 10;
CREATE VIEW labelled AS SELECT id, label, amount FROM prices;
CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(amount) AS total FROM prices;
GRANT SELECT ON cheap TO PUBLIC;
COMMENT ON VIEW labelled IS 'prices with labels';
"""

RECREATE = """
CREATE OR REPLACE VIEW cheap AS SELECT id, amount FROM prices WHERE amount < 10;
GRANT SELECT ON cheap TO PUBLIC;
CREATE OR REPLACE VIEW labelled AS SELECT id, label, amount FROM prices;
COMMENT ON VIEW labelled IS 'prices with labels';
CREATE MATERIALIZED VIEW IF NOT EXISTS totals AS SELECT count(*) AS n, sum(amount) AS total FROM prices;
"""
DROP = "DROP MATERIALIZED VIEW IF EXISTS totals; DROP VIEW IF EXISTS labelled; DROP VIEW IF EXISTS cheap"


def test_views_declared_dropped_by_raw_sql_let_a_column_under_them_change_type(database_url, migrations_dir):
    """The issue's remedy in one migration: raw_sql drops two views and a materialized view and
    says so (`drops`), alter_column widens numeric(4,2) under them, a raw_sql at cutover
    re-creates them; up, down, up, down end as before (column order aside, which plan announces)."""
    import json

    def after_up(conn):
        assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                            "WHERE attrelid = 'prices'::regclass AND attname = 'amount'").fetchone() == (
                                "numeric(6,2)",)
        assert conn.execute("SELECT count(*) FROM cheap").fetchone()[0] > 0

    run_lifecycle(database_url, migrations_dir, migration("widen_amount", f"""
        - raw_sql:
            table: prices
            up: "{DROP}"
            down: {json.dumps(RECREATE)}
            drops: [cheap, labelled, totals]
        - alter_column:
            table: prices
            column: amount
            type: numeric(6,2)
            up: "amount::numeric(6,2)"
            down: "amount::numeric(4,2)"
        - raw_sql:
            table: prices
            step: complete
            up: {json.dumps(RECREATE)}
            down: "{DROP}"
    """), VIEWS, after_up=after_up)


def test_without_drops_alter_column_carries_the_views_itself(database_url, migrations_dir):
    """No raw_sql needed any more (tests/operations/test_dependent_views.py): plan says which
    views the cutover re-creates."""
    run_sql(database_url, VIEWS)
    engine = engine_for(database_url, migrations_dir, migration("widen_carried", """
        - alter_column: {table: prices, column: amount, type: "numeric(6,2)", up: "amount", down: "amount"}
    """))
    notes = "\n".join(engine.plan()["notes"])
    assert "view public.cheap, view public.labelled, materialized view public.totals" in notes


def test_a_column_under_two_views_and_a_materialized_view_is_renamed(database_url, migrations_dir):
    """Views read columns by position, so PostgreSQL carries them over a rename (their
    definitions then print the new name) and back; grants and comments stay."""
    def after_up(conn):
        assert "price" in conn.execute("SELECT pg_get_viewdef('cheap'::regclass)").fetchone()[0]

    run_lifecycle(database_url, migrations_dir, migration("rename_amount", """
        - rename_column: {table: prices, from: amount, to: price}
    """), VIEWS, after_up=after_up)


def test_a_column_under_views_declared_dropped_is_dropped(database_url, migrations_dir):
    """drop_column under views: a raw_sql drops them (drops: [...]) and a raw_sql at cutover
    re-creates them without the column; down puts the column and the views back."""
    import json

    without = ("CREATE OR REPLACE VIEW cheap AS SELECT id FROM prices; "
               "CREATE OR REPLACE VIEW labelled AS SELECT id, label FROM prices; "
               "CREATE MATERIALIZED VIEW IF NOT EXISTS totals AS SELECT count(*) AS n FROM prices")

    def after_up(conn):
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'prices'::regclass "
                            "AND attname = 'amount' AND NOT attisdropped").fetchone()[0] == 0

    run_lifecycle(database_url, migrations_dir, migration("drop_amount", f"""
        - raw_sql:
            table: prices
            up: "{DROP}"
            down: {json.dumps(RECREATE)}
            drops: [cheap, labelled, totals]
        - drop_column: {{table: prices, column: amount}}
        - raw_sql:
            table: prices
            step: complete
            up: "{without}"
            down: "{DROP}"
    """), VIEWS, after_up=after_up)


DECLARED = """
    - raw_sql:
        up: "CREATE TABLE IF NOT EXISTS audit (id bigint PRIMARY KEY, note text NOT NULL);
             ALTER TABLE prices ADD COLUMN IF NOT EXISTS cents int"
        down: "DROP TABLE IF EXISTS audit; ALTER TABLE prices DROP COLUMN IF EXISTS cents"
        creates: [audit]
        alters: [prices]
    - add_column: {table: audit, column: {name: at, type: timestamptz}}
    - create_index: {name: prices_cents_idx, table: prices, columns: [cents]}
    - backfill: {table: prices, set: {cents: "(amount * 100)::int"}}
"""


def test_what_a_raw_sql_declares_it_creates_and_alters_is_planned_against(database_url, migrations_dir):
    """Later operations use the table and the column up's own statements make (read with
    PostgreSQL's parser, not run), from plan on."""
    def after_up(conn):
        assert conn.execute("SELECT cents FROM prices WHERE id = 1").fetchone() == (125,)
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'audit'::regclass "
                            "AND attname = 'at'").fetchone() == (1,)

    run_lifecycle(database_url, migrations_dir, migration("declared", DECLARED), VIEWS,
                  after_up=after_up)


def test_without_the_declarations_later_operations_are_refused(database_url, migrations_dir):
    run_sql(database_url, VIEWS)
    text = DECLARED.replace("        creates: [audit]\n", "").replace("        alters: [prices]\n", "")
    engine = engine_for(database_url, migrations_dir, migration("undeclared", text))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), TableDoesNotExistError)


def test_a_declaration_up_does_not_make_is_refused(database_url, migrations_dir):
    run_sql(database_url, VIEWS)
    engine = engine_for(database_url, migrations_dir, migration("overdeclared", """
        - raw_sql: {up: "SELECT 1", down: "SELECT 1", alters: [prices]}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "operations[0].raw_sql.alters: up has no statement altering public.prices" in str(error)
