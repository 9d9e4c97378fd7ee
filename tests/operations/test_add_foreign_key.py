"""add_foreign_key through the lifecycle (NOT VALID then VALIDATE; on a partitioned table per
partition, then attached), orphans, the orphan check, and the refusals."""

from __future__ import annotations

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnDoesNotExistError,
    SchemaValidationError,
    SpecError,
    StepFailedError,
    TableDoesNotExistError,
    ValidationFailedError,
)

EXTRA = '''
CREATE TABLE payments (id bigint PRIMARY KEY, order_id bigint, amount numeric(10, 2));
INSERT INTO payments SELECT g, CASE WHEN g % 9 = 0 THEN NULL ELSE g END, g FROM generate_series(1, 250) g;
CREATE TABLE "Returns" (id int PRIMARY KEY, order_id bigint NOT NULL, "line ""no""" int, reason text);
INSERT INTO "Returns" SELECT g, i.order_id, CASE WHEN g % 5 = 0 THEN NULL ELSE i."line ""no""" END, 'broken'
FROM generate_series(1, 60) g JOIN "Order Items" i ON i."line ""no""" = g * 3;
ALTER TABLE events ADD COLUMN customer_id uuid;
UPDATE events SET customer_id = md5('customer' || (id % 120 + 1))::uuid WHERE id % 3 = 0;
'''


def _constraint(conn, name):
    return conn.execute(
        "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conname = %s AND conparentid = 0",
        (name,)).fetchone()


def test_add_foreign_keys(database_url, migrations_dir):
    def after_up(conn):
        assert _constraint(conn, "payments_order_id_fkey") == (
            "FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE", True)
        assert _constraint(conn, "returns_item_fkey") == (
            'FOREIGN KEY (order_id, "line ""no""") REFERENCES "Order Items"(order_id, "line ""no""")', True)
        assert _constraint(conn, "events_customer_id_fkey") == (
            "FOREIGN KEY (customer_id) REFERENCES customers(id)", True)

    run_lifecycle(database_url, migrations_dir, migration("fks", '''
        - add_foreign_key:
            table: payments
            columns: [order_id]
            references: {table: orders, columns: [id]}
            on_delete: CASCADE
        - add_foreign_key:
            table: Returns
            name: returns_item_fkey
            columns: [order_id, 'line "no"']
            references: {table: Order Items, columns: [order_id, 'line "no"']}
        - add_foreign_key:
            table: events
            columns: [customer_id]
            references: {table: customers, columns: [id]}
    '''), SHOP + EXTRA, after_up=after_up)


# events: one partition with an equivalent key of its own (PostgreSQL attaches it instead of
# ours, and dropping ours would drop it: pagila's payment partitions), one with none, one
# sub-partitioned
EVENTS_KEYS = """
ALTER TABLE events_2024 ADD CONSTRAINT events_2024_own_fkey FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
    PARTITION BY RANGE (id);
CREATE TABLE events_2026_all PARTITION OF events_2026 DEFAULT;
INSERT INTO events VALUES (9001, '2026-03-01', 'x', NULL, md5('customer1')::uuid);
"""


def test_a_foreign_key_on_a_partitioned_table_keeps_the_partitions_own(database_url, migrations_dir):
    """Each leaf gets the key NOT VALID + VALIDATE (writes go on), the parent's ADD attaches
    them without a scan; down gives events_2024 its own key back (run_lifecycle's snapshots,
    after every partial start and undo too)."""
    def after_up(conn):
        assert _constraint(conn, "events_customer_id_fkey") == (
            "FOREIGN KEY (customer_id) REFERENCES customers(id)", True)
        attached = conn.execute(
            """WITH RECURSIVE a AS (
                   SELECT oid, conrelid, conname FROM pg_constraint WHERE conparentid =
                       (SELECT oid FROM pg_constraint WHERE conname = 'events_customer_id_fkey' AND conparentid = 0)
                   UNION ALL SELECT c.oid, c.conrelid, c.conname FROM pg_constraint c JOIN a ON c.conparentid = a.oid)
               SELECT conrelid::regclass::text, conname FROM a ORDER BY 1""").fetchall()
        assert attached == [("events_2024", "events_2024_own_fkey"),
                            ("events_2025", "events_customer_id_fkey"),
                            ("events_2026", "events_customer_id_fkey"),
                            ("events_2026_all", "events_customer_id_fkey")]

    run_lifecycle(database_url, migrations_dir, migration("events_fk", '''
        - add_foreign_key:
            table: events
            columns: [customer_id]
            references: {table: customers, columns: [id]}
    '''), SHOP + EXTRA + EVENTS_KEYS, after_up=after_up)


def test_on_a_partitioned_table_no_statement_scans_under_a_write_lock(database_url, migrations_dir,
                                                                       conn):
    run_sql(database_url, SHOP + EXTRA + EVENTS_KEYS)
    engine = engine_for(database_url, migrations_dir, migration("events_fk", """
        - add_foreign_key: {table: events, columns: [customer_id], references: {table: customers, columns: [id]}}
    """))
    actions = engine.migration.operations[0].start(engine.context(conn))
    adds = [a.sql for a in actions if "ADD CONSTRAINT" in a.sql]
    # the leaves NOT VALID (events_2024's own key stands in for ours there: only_if), the parent
    # last, when every leaf has a validated key to attach
    assert [s.split()[2] for s in adds] == ['"public"."events_2024"', '"public"."events_2025"',
                                            '"public"."events_2026_all"', '"public"."events"']
    assert all(s.endswith("NOT VALID") for s in adds[:-1]) and not adds[-1].endswith("NOT VALID")


def test_orphans_fail_the_start_and_leave_no_constraint(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP + EXTRA + "INSERT INTO payments VALUES (9001, 424242, 1);")
    engine = engine_for(database_url, migrations_dir, migration("orphans", """
        - add_foreign_key: {table: payments, columns: [order_id], references: {table: orders, columns: [id]}}
    """))
    engine.up("backup")
    error = assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)
    assert "424242" in str(error)
    assert _constraint(conn, "payments_order_id_fkey") is None


def test_validation_counts_orphans_with_sample_keys(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP + EXTRA)
    engine = engine_for(database_url, migrations_dir, migration("orphan_check", """
        - add_foreign_key: {table: payments, columns: [order_id], references: {table: orders, columns: [id]}}
    """))
    for step in ("backup", "schema_change", "backfill"):
        engine.up(step)
    # someone drops the constraint and writes an orphan before validation runs
    conn.execute("ALTER TABLE payments DROP CONSTRAINT payments_order_id_fkey")
    conn.execute("INSERT INTO payments VALUES (9001, 424242, 1)")
    with pytest.raises(ValidationFailedError) as caught:
        engine.up("validation")
    message = str(caught.value)
    assert "payments_order_id_fkey.validated" in message
    assert "payments_order_id_fkey.orphans (observed 1, e.g. keys (9001)" in message


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: payments, columns: [order_id], references: {table: nowhere, columns: [id]}}",
         TableDoesNotExistError),
        ("{table: payments, columns: [order_id], references: {table: orders, columns: [nope]}}",
         ColumnDoesNotExistError),
        ("{table: payments, columns: [nope], references: {table: orders, columns: [id]}}",
         ColumnDoesNotExistError),
        ("{table: orders, name: orders_customer_id_fkey, columns: [customer_id], "
         "references: {table: customers, columns: [id]}}", SchemaValidationError),
    ],
)
def test_add_foreign_key_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP + EXTRA)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- add_foreign_key: {operation}"))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), error)


def test_column_counts_must_match(migrations_dir):
    with pytest.raises(SpecError) as caught:
        engine_for("postgresql://unused", migrations_dir, migration("bad_fk", """
            - add_foreign_key: {table: a, columns: [x, y], references: {table: b, columns: [id]}}
        """))
    assert caught.value.field == "operations[0].add_foreign_key.references.columns"
