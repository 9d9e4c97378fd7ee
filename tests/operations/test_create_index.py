"""create_index through the lifecycle (concurrent, and on a partitioned table per partition), a failed
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


# a partition with an index of its own that an index on the parent would take over, and a
# sub-partitioned partition (an index of its own, ON ONLY, between the parent's and the leaf's)
EVENTS_EXTRA = """
CREATE INDEX events_2024_payload_own ON events_2024 USING gin (payload);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
    PARTITION BY RANGE (id);
CREATE TABLE events_2026_other PARTITION OF events_2026 DEFAULT;
INSERT INTO events VALUES (9001, '2026-03-01', 'x', '{"a": 1}');
"""


def test_create_index_on_a_partitioned_table(database_url, migrations_dir):
    """Built ON ONLY the parent, concurrently on each leaf, attached: no long lock, and the
    partition's own equivalent index is neither taken over nor dropped by down (the snapshot
    comparison of run_lifecycle)."""
    def after_up(conn):
        assert conn.execute(INDEX_DEF, ("events_payload_idx",)).fetchone() == (
            "CREATE INDEX events_payload_idx ON ONLY public.events USING gin (payload)", True)
        attached = conn.execute(
            """SELECT c.relname FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid
               WHERE inhparent = 'events_payload_idx'::regclass ORDER BY 1""").fetchall()
        assert attached == [("events_payload_idx__events_2024",), ("events_payload_idx__events_2025",),
                            ("events_payload_idx__events_2026",)]
        assert conn.execute(INDEX_DEF, ("events_payload_idx__events_2026_other",)).fetchone()[1] is True
        assert conn.execute("SELECT to_regclass('events_2024_payload_own')").fetchone()[0] is not None

    run_lifecycle(database_url, migrations_dir, migration("events_payload", """
        - create_index: {name: events_payload_idx, table: events, columns: [payload], method: gin}
    """), SHOP + EVENTS_EXTRA, after_up=after_up)


def test_on_a_partitioned_table_only_the_empty_parts_take_a_table_lock(database_url, migrations_dir,
                                                                      conn):
    """Each leaf's index is built CONCURRENTLY (writes go on); what runs in a transaction under
    lock_timeout (ON ONLY, ATTACH) builds nothing. A plain CREATE INDEX on the parent would block
    writes to every partition for the whole build."""
    run_sql(database_url, SHOP + EVENTS_EXTRA)
    engine = engine_for(database_url, migrations_dir, migration("events_kind", """
        - create_index: {name: events_kind_idx, table: events, columns: [kind]}
    """))
    actions = engine.migration.operations[0].start(engine.context(conn))
    builds = [a for a in actions if a.sql.startswith("CREATE INDEX CONCURRENTLY")]
    assert [a.sql.split(" ON ")[1].split()[0] for a in builds] == [
        '"public"."events_2024"', '"public"."events_2025"', '"public"."events_2026_other"']
    locked = [a for a in actions if a.transactional]
    assert all(a.takes_lock and (" ON ONLY " in a.sql or "ATTACH PARTITION" in a.sql) for a in locked)


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
