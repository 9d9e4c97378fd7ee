"""alter_column: a type change through a shadow column, kept in step both ways, swapped at cutover,
and undone exactly (values from the backup) at every step."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import psycopg
import pytest

from migration_dags.errors import NoPrimaryKeyError, SchemaValidationError, StepFailedError

from .lifecycle import assert_same, assert_unchanged_by, engine_for, run_lifecycle, run_sql, snapshot

SETUP = """
CREATE TABLE products (id int PRIMARY KEY, sku text NOT NULL, price text NOT NULL DEFAULT '0',
                       note text);
COMMENT ON COLUMN products.price IS 'price as people typed it';
INSERT INTO products SELECT g, 'sku' || g, CASE WHEN g % 3 = 0 THEN g || ',5' ELSE g || '.25' END,
  CASE WHEN g % 2 = 0 THEN 'n' END FROM generate_series(1, 300) g;
"""

# '3,5' becomes 3.50, whose down is '3.50': only the backup can give '3,5' back
MIGRATION = """
name: price_numeric
tables: [products]
settings: {batch_size: 40, partition_rows: 100}
operations:
  - alter_column:
      table: products
      column: price
      type: numeric(10,2)
      up: "replace(price, ',', '.')::numeric(10,2)"
      down: "price::text"
      default: "0"
"""


def column(conn, table, name):
    return conn.execute(
        """SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
                  col_description(a.attrelid, a.attnum)
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped""",
        (table, name)).fetchone()


def test_lifecycle_changes_the_type_and_undoes_it_exactly(database_url, migrations_dir):
    def after_up(conn):
        assert column(conn, "products", "price") == (
            "numeric(10,2)", True, "0", "price as people typed it")
        assert conn.execute("SELECT price FROM products WHERE id = 3").fetchone()[0] == Decimal("3.50")
        assert column(conn, "products", "mdg_new__price") is None
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass"
                            " AND tgname NOT LIKE 'mdg%capture%'").fetchone()[0] == 0  # capture's stays

    run_lifecycle(database_url, migrations_dir, MIGRATION, SETUP, after_up=after_up)


def test_lifecycle_keeps_collation_and_nulls(database_url, migrations_dir):
    setup = """
    CREATE TABLE codes (id bigint PRIMARY KEY, code varchar(12) COLLATE "C", n int);
    INSERT INTO codes SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'c' || g END, g
      FROM generate_series(1, 120) g;
    """
    migration = """
    name: code_text
    tables: [codes]
    settings: {batch_size: 25, partition_rows: 50}
    operations:
      - alter_column: {table: codes, column: code, type: text, up: "upper(code)", down: "lower(code)::varchar(12)"}
    """

    def after_up(conn):
        assert column(conn, "codes", "code")[:2] == ("text", False)
        assert conn.execute("SELECT count(*) FROM codes WHERE code IS NULL").fetchone()[0] == 30
        assert conn.execute("SELECT code FROM codes WHERE id = 5").fetchone()[0] == "C5"

    run_lifecycle(database_url, migrations_dir, migration, setup, after_up=after_up)


def test_live_writes_keep_both_columns_in_step_both_ways(conn, database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION + "validation: {row_count: grows}\n")
    engine.up("backup")
    engine.up("schema_change")
    # an old client writes the old column: the new one follows by up
    conn.execute("INSERT INTO products (id, sku, price) VALUES (1001, 'new', '7,5')")
    conn.execute("UPDATE products SET price = '1,5' WHERE id = 1")
    # a new client writes only the new column: the old one follows by down
    conn.execute("UPDATE products SET mdg_new__price = 8.25 WHERE id = 2")
    conn.execute("INSERT INTO products (id, sku, mdg_new__price) VALUES (1002, 'newer', 9)")
    # writing other columns recomputes the new one from the old, never the other way round
    conn.execute("UPDATE products SET note = 'x' WHERE id = 1")
    rows = dict(conn.execute(
        "SELECT id, (price, mdg_new__price)::text FROM products WHERE id IN (1, 2, 1001, 1002)"))
    assert rows == {1: "(\"1,5\",1.50)", 2: "(8.25,8.25)", 1001: "(\"7,5\",7.50)",
                    1002: "(9.00,9.00)"}
    for step in ("backfill", "validation", "cutover"):
        engine.up(step)
    got = dict(conn.execute("SELECT id, price FROM products WHERE id IN (1, 2, 3, 1001, 1002)"))
    assert got == {1: Decimal("1.50"), 2: Decimal("8.25"), 3: Decimal("3.50"),
                   1001: Decimal("7.50"), 1002: Decimal("9.00")}
    assert conn.execute("SELECT count(*) FROM products WHERE price IS NULL").fetchone()[0] == 0


def test_writers_during_the_backfill_are_not_missed(conn, database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION.replace("batch_size: 40", "batch_size: 10"))
    engine.up("backup")
    engine.up("schema_change")
    stop = threading.Event()
    errors = []

    def write(seed):
        rnd = random.Random(seed)
        try:
            with psycopg.connect(database_url, autocommit=True) as c:
                while not stop.is_set():
                    c.execute("UPDATE products SET price = %s WHERE id = %s",
                              (f"{rnd.randint(1, 99)},{rnd.randint(0, 9)}", rnd.randint(1, 300)))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for w in writers:
        w.start()
    try:
        engine.up("backfill")
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert not errors
    engine.up("validation")  # counts rows whose new value is not up(old): none
    engine.up("cutover")
    assert conn.execute("SELECT count(*) FROM products WHERE price IS NULL").fetchone()[0] == 0


def test_undo_of_cutover_restores_backup_values_and_downs_the_rest(conn, database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    for step in ("backup", "schema_change", "backfill", "validation", "cutover"):
        engine.up(step)
    conn.execute("UPDATE products SET price = 42.5 WHERE id = 6")  # changed after the cutover
    conn.execute("INSERT INTO products (id, sku, price) VALUES (2000, 'late', 1.1)")
    engine.down("cutover")
    rows = dict(conn.execute("SELECT id, price FROM products WHERE id IN (3, 4, 6, 2000)"))
    assert rows == {3: "3,5", 4: "4.25", 6: "42.50", 2000: "1.10"}
    assert column(conn, "products", "price") == ("text", True, "'0'::text", "price as people typed it")
    assert column(conn, "products", "mdg_new__price")[:2] == ("numeric(10,2)", False)
    # the expand phase is back: writes to the old column reach the new one again
    conn.execute("UPDATE products SET price = '5,5' WHERE id = 5")
    assert conn.execute("SELECT mdg_new__price FROM products WHERE id = 5").fetchone()[0] == Decimal("5.50")


def test_a_view_that_would_not_work_over_the_new_type_is_refused_at_validate(
        conn, database_url, migrations_dir):
    """The view stores `price < '5'::text`: over numeric there is no such operator. The views
    that would work are carried over (tests/operations/test_dependent_views.py)."""
    run_sql(database_url, SETUP + """
        CREATE VIEW cheap AS SELECT id FROM products WHERE price < '5';
        CREATE VIEW labels AS SELECT sku || price AS label FROM products;
        CREATE VIEW skus AS SELECT sku FROM products;""")
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert ("view public.cheap does not work over public.products.price as numeric(10,2) "
            "(operator does not exist: numeric < text)") in str(error)
    assert "price_numeric.yaml" in str(error)


def test_a_check_that_would_not_work_over_the_new_type_is_refused_at_validate(
        conn, database_url, migrations_dir):
    """The index is rebuilt on the new column (tests/operations/test_shadow_indexes.py); the
    check compares with ''::text, which numeric cannot."""
    run_sql(database_url, SETUP + """
        CREATE INDEX products_price_idx ON products (price);
        ALTER TABLE products ADD CONSTRAINT price_not_empty CHECK (price <> '');""")
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "check constraint price_not_empty does not work over public.products.price" in str(error)


def test_what_slips_past_validate_is_refused_before_any_change(conn, database_url, migrations_dir):
    """A unique index made after backup: schema_change validates again before it starts."""
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    engine.up("backup")
    conn.execute("CREATE UNIQUE INDEX products_price_key ON products (price)")
    error = assert_unchanged_by(database_url, lambda: engine.up("schema_change"), SchemaValidationError)
    assert "has unique index products_price_key, which alter_column cannot rebuild" in str(error)
    assert engine.status().is_applied("schema_change") is False


@pytest.mark.parametrize("setup, expected, words", [
    ("CREATE TABLE products (id int, price text)", NoPrimaryKeyError, "no primary key"),
    ("CREATE TABLE products (price text PRIMARY KEY)", SchemaValidationError, "part of the key"),
    ("CREATE TABLE products (id int PRIMARY KEY, cost text)", SchemaValidationError,
     "column 'price' does not exist"),
    ("CREATE TABLE products (id int PRIMARY KEY, price text DEFAULT 'free')", SchemaValidationError,
     "give `default:`"),
    # the swap drops the old column: PostgreSQL would refuse at cutover, after the backfill
    ("CREATE TABLE products (id int PRIMARY KEY, price text, twice text GENERATED ALWAYS AS "
     "(price || price) STORED)", SchemaValidationError, "is read by generated column twice"),
    ("CREATE TABLE products (id int PRIMARY KEY, price text); CREATE TRIGGER t BEFORE UPDATE OF "
     "price ON products FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
     SchemaValidationError, "trigger t (UPDATE OF or WHEN)"),
    # a partition's own index over the column: the swap's DROP COLUMN would drop it for good
    # (pagila's payment partitions lost 12 indexes and 6 foreign keys, exit 0)
    ("CREATE TABLE products (id int PRIMARY KEY, price text) PARTITION BY RANGE (id); "
     "CREATE TABLE products_1 PARTITION OF products FOR VALUES FROM (0) TO (100); "
     "CREATE INDEX products_1_price ON products_1 (price)", SchemaValidationError,
     "has, in its partitions, index products_1_price: dropping the column at cutover"),
])
def test_refused_at_validate(conn, database_url, migrations_dir, setup, expected, words):
    run_sql(database_url, setup)
    engine = engine_for(database_url, migrations_dir, MIGRATION.replace('      default: "0"\n', ""))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), expected)
    assert words in str(error)


def test_plan_shows_every_step_before_anything_runs(conn, database_url, migrations_dir):
    run_sql(database_url, SETUP)
    plan = engine_for(database_url, migrations_dir, MIGRATION).plan()
    start, cutover = "\n".join(plan["schema_change"]), "\n".join(plan["cutover"])
    assert 'ADD COLUMN IF NOT EXISTS "mdg_new__price" numeric(10,2)' in start
    assert "CREATE OR REPLACE TRIGGER" in start and "WHEN (coalesce(current_setting(" in start
    assert "NOT VALID" in cutover and "VALIDATE CONSTRAINT" in cutover
    assert 'RENAME COLUMN "mdg_new__price" TO "price"' in cutover
    assert column(conn, "products", "mdg_new__price") is None  # the plan changed nothing


def test_a_down_before_cutover_keeps_the_column_order_exactly(database_url, migrations_dir):
    """Until cutover the original column stays in its place and the shadow column is the last;
    rollback drops it: pg_dump prints the table exactly as before, column order included, and
    the proof finds the schema equal (not merely "column order, as announced")."""
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    before = snapshot(database_url)
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    for step in ("validation", "backfill", "schema_change"):
        engine.down(step)
    report = engine.down("backup")
    assert_same(before, snapshot(database_url), "after a down from the expanded state")
    assert report.extra["proof"]["public.products"]["schema_equal"] is True


def test_a_down_after_cutover_moves_only_the_announced_column(database_url, migrations_dir):
    run_sql(database_url, SETUP)
    engine = engine_for(database_url, migrations_dir, MIGRATION)
    for step in ("backup", "schema_change", "backfill", "validation", "cutover"):
        engine.up(step)
    for step in ("cutover", "validation", "backfill", "schema_change"):
        engine.down(step)
    proof = engine.down("backup").extra["proof"]["public.products"]
    assert proof["differs_in"] == "column order: price now last (announced by plan)"
