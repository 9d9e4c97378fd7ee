"""create_index through the lifecycle (concurrent and, on a partitioned table, plain), a failed
unique build, the invalid leftover of a failed concurrent build, and the refusals."""

from __future__ import annotations

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnDoesNotExistError,
    SchemaValidationError,
    StepFailedError,
    ValidationFailedError,
)
from migration_dags.db import ActionRunner

INDEX_DEF = """SELECT pg_get_indexdef(c.oid), i.indisvalid FROM pg_class c
               JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = %s"""


def test_create_indexes_concurrently(database_url, migrations_dir):
    def after_up(conn):
        assert conn.execute(INDEX_DEF, ("customers_email_key",)).fetchone() == (
            'CREATE UNIQUE INDEX customers_email_key ON public.customers USING btree ("Email") '
            'WHERE ("Email" IS NOT NULL)', True)
        assert conn.execute(INDEX_DEF, ('Items "by sku"',)).fetchone() == (
            'CREATE INDEX "Items ""by sku""" ON public."Order Items" USING btree (sku, "line ""no""")',
            True)

    run_lifecycle(database_url, migrations_dir, migration("indexes", '''
        - create_index:
            name: customers_email_key
            table: customers
            columns: [Email]
            unique: true
            where: '"Email" IS NOT NULL'
        - create_index:
            name: 'Items "by sku"'
            table: Order Items
            columns: [sku, 'line "no"']
    '''), SHOP, after_up=after_up)


def test_create_index_on_a_partitioned_table(database_url, migrations_dir):
    def after_up(conn):
        assert conn.execute(INDEX_DEF, ("events_payload_idx",)).fetchone() == (
            "CREATE INDEX events_payload_idx ON ONLY public.events USING gin (payload)", True)
        partitions = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_payload_idx'::regclass").fetchone()
        assert partitions == (2,)

    run_lifecycle(database_url, migrations_dir, migration("events_payload", """
        - create_index: {name: events_payload_idx, table: events, columns: [payload], method: gin}
    """), SHOP, after_up=after_up)


def test_a_failed_unique_build_leaves_no_index(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("unique_status", """
        - create_index: {name: orders_status_key, table: orders, columns: [status], unique: true}
    """))
    engine.up("backup")
    assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)
    assert conn.execute("SELECT to_regclass('orders_status_key')").fetchone() == (None,)


def test_start_drops_the_invalid_leftover_of_a_failed_concurrent_build(database_url, migrations_dir, conn):
    """A crash mid-build leaves an INVALID index that IF NOT EXISTS would take for done."""
    run_sql(database_url, SHOP + "INSERT INTO orders (id, status) VALUES (1000, 'x'), (1001, 'x');")
    with pytest.raises(Exception):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_status_key ON orders (status)")
    assert conn.execute(INDEX_DEF, ("orders_status_key",)).fetchone()[1] is False
    conn.execute("DELETE FROM orders WHERE id > 999")  # the data is fixed, the leftover remains
    conn.execute("ALTER TABLE orders ALTER COLUMN status DROP DEFAULT")
    conn.execute("UPDATE orders SET status = status || id")
    engine = engine_for(database_url, migrations_dir, migration("unique_status", """
        - create_index: {name: orders_status_key, table: orders, columns: [status], unique: true}
    """))
    op = engine.migration.operations[0]
    ActionRunner(conn).run_all(op.start(engine.context(conn)))
    assert conn.execute(INDEX_DEF, ("orders_status_key",)).fetchone() == (
        "CREATE UNIQUE INDEX orders_status_key ON public.orders USING btree (status)", True)


def test_validation_fails_when_the_index_went_missing(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("index_gone", """
        - create_index: {name: orders_total_idx, table: orders, columns: [total]}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    conn.execute("DROP INDEX orders_total_idx")
    with pytest.raises(ValidationFailedError, match="orders_total_idx.valid"):
        engine.up("validation")


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{name: x_idx, table: orders, columns: [nope]}", ColumnDoesNotExistError),
        ("{name: orders_pkey, table: orders, columns: [status]}", SchemaValidationError),
        ("{name: order_summary, table: orders, columns: [status]}", SchemaValidationError),
    ],
)
def test_create_index_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- create_index: {operation}"))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), error)
