"""drop_column: dropped at cutover and put back exactly (definition, values, indexes, constraints,
comment) by its undo; the refusals."""

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

from migration_dags.errors import (
    ColumnDoesNotExistError,
    NoPrimaryKeyError,
    SchemaValidationError,
    StepFailedError,
    TableDoesNotExistError,
)

PRODUCTS = '''
CREATE TABLE products (
    id int PRIMARY KEY,
    sku text NOT NULL,
    "Legacy Code" varchar(12) COLLATE "C" NOT NULL DEFAULT 'none'
        CONSTRAINT legacy_code_not_blank CHECK ("Legacy Code" <> ''),
    price numeric(8, 2),
    price_cents bigint GENERATED ALWAYS AS ((price * 100)::bigint) STORED,
    CONSTRAINT products_sku_code_key UNIQUE (sku, "Legacy Code")
);
COMMENT ON COLUMN products."Legacy Code" IS 'from the old ERP; do not use';
CREATE INDEX products_legacy_code_idx ON products (lower("Legacy Code")) WHERE "Legacy Code" <> 'none';
CREATE TABLE product_tags (product_id int, tag text);
INSERT INTO products (id, sku, "Legacy Code", price)
SELECT g, 'SKU-' || g, CASE WHEN g % 4 = 0 THEN 'none' ELSE 'L-' || g END,
       CASE WHEN g % 6 = 0 THEN NULL ELSE g * 0.25 END
FROM generate_series(1, 150) g;
'''


def _has_column(conn, table, column) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
        "AND NOT attisdropped)", (table, column)).fetchone()[0]


def test_drop_columns_and_put_them_back_exactly(database_url, migrations_dir):
    """The harness compares pg_dump output and every row after each down: type, collation,
    default, NOT NULL, comment, the check, the unique constraint, the expression index and the
    values must all come back."""
    def after_up(conn):
        assert not _has_column(conn, "products", "Legacy Code")
        assert not _has_column(conn, "products", "price_cents")
        assert not _has_column(conn, "orders", "note")
        assert conn.execute("SELECT to_regclass('products_legacy_code_idx')").fetchone() == (None,)

    run_lifecycle(database_url, migrations_dir, migration("drop_legacy", """
        - drop_column: {table: products, column: Legacy Code}
        - drop_column: {table: products, column: price_cents}
        - drop_column: {table: orders, column: note}
    """), SHOP + PRODUCTS, after_up=after_up)


def test_drop_a_column_of_a_partitioned_table(database_url, migrations_dir):
    def after_up(conn):
        assert not _has_column(conn, "events_2024", "kind")

    run_lifecycle(database_url, migrations_dir, migration("drop_kind", """
        - drop_column: {table: events, column: kind}
    """), SHOP + "CREATE INDEX events_kind_idx ON events (kind);", after_up=after_up)


def test_the_column_stays_until_cutover(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("late_drop", """
        - drop_column: {table: orders, column: note}
    """))
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    assert _has_column(conn, "orders", "note")
    engine.up("cutover")
    assert not _has_column(conn, "orders", "note")


def test_a_failed_cutover_puts_the_dropped_column_back(database_url, migrations_dir):
    run_sql(database_url, SHOP + PRODUCTS)
    engine = engine_for(database_url, migrations_dir, migration("drop_then_fail", """
        - drop_column: {table: products, column: Legacy Code}
        - raw_sql: {table: products, step: complete, up: "SELECT 1 / 0", down: "SELECT 1"}
    """))
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    before = snapshot(database_url)
    with pytest.raises(StepFailedError, match="division by zero"):
        engine.up("cutover")
    # the column comes back last, as plan says before up (drop_column.column_order_note)
    assert_same(before, snapshot(database_url), "after the failed cutover", order_may_differ=True)


def test_rows_inserted_after_the_backup_get_the_default_back(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP + PRODUCTS)
    engine = engine_for(database_url, migrations_dir, migration("drop_code", """
        - drop_column: {table: products, column: Legacy Code}
    """))
    for step in ("backup", "schema_change", "backfill", "validation", "cutover"):
        engine.up(step)
    conn.execute("INSERT INTO products (id, sku) VALUES (1000, 'NEW')")
    engine.down("cutover")
    assert conn.execute('SELECT "Legacy Code" FROM products WHERE id = 1000').fetchone() == ("none",)
    assert conn.execute('SELECT "Legacy Code" FROM products WHERE id = 3').fetchone() == ("L-3",)


@pytest.mark.parametrize(
    "setup, operation, error, words",
    [
        ("", "{table: nowhere, column: x}", TableDoesNotExistError, "nowhere"),
        ("", "{table: orders, column: nope}", ColumnDoesNotExistError, "nope"),
        ("", "{table: orders, column: total}", SchemaValidationError, "public.order_summary"),
        ("", "{table: orders, column: id}", SchemaValidationError, "public.order_summary"),
        ("", "{table: Order Items, column: order_id}", SchemaValidationError, "key"),
        ("", "{table: product_tags, column: tag}", NoPrimaryKeyError, "product_tags"),
        ("CREATE TABLE serials (id int PRIMARY KEY, n serial);", "{table: serials, column: n}",
         SchemaValidationError, "sequence"),
        # what PostgreSQL would not let the cutover drop it from under, found before any change
        ("ALTER TABLE orders ENABLE ROW LEVEL SECURITY; CREATE POLICY paid ON orders USING (note IS NULL);",
         "{table: orders, column: note}", SchemaValidationError, "is read by policy paid"),
        ("ALTER TABLE orders ADD COLUMN loud text GENERATED ALWAYS AS (upper(note)) STORED;",
         "{table: orders, column: note}", SchemaValidationError, "generated column loud"),
        # the user trigger's function sets NEW."Email": every write would fail once it is gone
        ("", "{table: customers, column: Email}", SchemaValidationError,
         "trigger customers_normalize_email (its function normalize_email reads NEW/OLD.Email)"),
    ],
)
def test_drop_column_refusals_change_nothing(database_url, migrations_dir, setup, operation, error, words):
    run_sql(database_url, SHOP + PRODUCTS + setup)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- drop_column: {operation}"))
    raised = assert_unchanged_by(database_url, lambda: engine.up("backup"), error)
    assert words in str(raised)


def test_an_identity_column_is_refused_at_start(database_url, migrations_dir):
    run_sql(database_url, SHOP + "CREATE TABLE tickets (id int PRIMARY KEY, n int GENERATED ALWAYS AS IDENTITY);")
    engine = engine_for(database_url, migrations_dir, migration("drop_identity", """
        - drop_column: {table: tickets, column: n}
    """))
    engine.up("backup")
    assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)


def test_a_column_renamed_in_the_same_cutover_is_not_dropped(database_url, migrations_dir, conn):
    """start saved no definition under the new name, so the drop refuses rather than lose it."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("rename_then_drop", """
        - rename_column: {table: orders, from: note, to: remark}
        - drop_column: {table: orders, column: remark}
    """))
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    before = snapshot(database_url)
    with pytest.raises(StepFailedError, match="no saved definition of public.orders.remark"):
        engine.up("cutover")
    assert_same(before, snapshot(database_url), "after the refused drop")
