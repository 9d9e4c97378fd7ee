"""Views over a column that changes: alter_column carries them over its swap (and back, exactly),
rename_column needs nothing (views follow by column number), drop_column refuses them by name
unless a raw_sql declares it drops them. Two views, one reading the other, and a materialized
view, each with options, grants, comments and an owner; the materialized view has an index."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import migration

from migration_dags.errors import SchemaValidationError

VIEWS = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mdg_test_reporting') THEN
    CREATE ROLE mdg_test_reporting;
  END IF;
END $$;
CREATE TABLE prices (id int PRIMARY KEY, amount numeric(4,2) NOT NULL, label text);
INSERT INTO prices SELECT g, (g % 97) + 0.25, 'p' || g FROM generate_series(1, 120) g;
CREATE VIEW cheap WITH (security_barrier) AS
  SELECT id, amount FROM prices WHERE amount < 10 WITH LOCAL CHECK OPTION;
CREATE VIEW cheap_labels AS SELECT c.id, c.amount * 2 AS doubled, p.label
  FROM cheap c JOIN prices p USING (id);
CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(amount) AS total FROM prices;
CREATE UNIQUE INDEX totals_n ON totals (n);
GRANT SELECT ON cheap TO PUBLIC;
GRANT SELECT (doubled) ON cheap_labels TO mdg_test_reporting;
COMMENT ON VIEW cheap_labels IS 'cheap prices with labels';
COMMENT ON COLUMN cheap_labels.doubled IS 'twice the amount';
COMMENT ON MATERIALIZED VIEW totals IS 'one row';
ALTER MATERIALIZED VIEW totals OWNER TO mdg_test_reporting;
"""

WIDEN = """
- alter_column:
    table: prices
    column: amount
    type: numeric(6,2)
    up: "amount::numeric(6,2)"
    down: "amount::numeric(4,2)"
"""


def _type(conn, relation, column):
    return conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = to_regclass(%s) AND attname = %s", (relation, column)).fetchone()[0]


def _totals(conn):
    return conn.execute("SELECT n, total FROM totals").fetchone()


def test_alter_column_carries_two_views_and_a_materialized_view_over(database_url, migrations_dir):
    """up, up again, down, down again: the harness compares pg_dump and every row; the views
    read the new type after up, and are back as they were (grants, comments, owner, options,
    the materialized view's index and contents) after down."""
    seen = {}

    def after_up(conn):
        assert _type(conn, "prices", "amount") == "numeric(6,2)"
        assert _type(conn, "cheap", "amount") == "numeric(6,2)"  # the view reads the new column
        assert _type(conn, "totals", "total") == "numeric"
        assert conn.execute("SELECT count(*) FROM cheap_labels").fetchone()[0] > 0
        assert _totals(conn) == (120, Decimal("4962.00"))
        seen["owner"] = conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class "
                                     "WHERE oid = 'totals'::regclass").fetchone()[0]

    def after_down(conn):
        assert _type(conn, "cheap", "amount") == "numeric(4,2)"
        assert _totals(conn) == (120, Decimal("4962.00"))  # populated, as before

    engine = run_lifecycle(database_url, migrations_dir, migration("widen_amount", WIDEN), VIEWS,
                           after_up=after_up, after_down=after_down)
    assert seen["owner"] == "mdg_test_reporting"
    notes = "\n".join(engine.plan()["notes"])
    assert "view public.cheap, materialized view public.totals, view public.cheap_labels" in notes
    assert "re-created WITH DATA" in notes


def test_plan_shows_the_views_carried_over(database_url, migrations_dir):
    run_sql(database_url, VIEWS)
    plan = engine_for(database_url, migrations_dir, migration("widen_plan", WIDEN)).plan()
    cutover = "\n".join(plan["cutover"])
    assert "$save_views$" in cutover and "$drop_views$" in cutover and "$recreate_views$" in cutover


def test_a_view_that_no_longer_type_checks_is_refused_by_name(database_url, migrations_dir):
    run_sql(database_url, VIEWS + "CREATE VIEW shouty AS SELECT id, upper(amount::text) FROM cheap;")
    engine = engine_for(database_url, migrations_dir, migration("to_text", """
        - alter_column: {table: prices, column: amount, type: text, up: "amount::text",
                         down: "amount::numeric(4,2)"}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "view public.cheap does not work over public.prices.amount as text" in str(error)
    assert "operations[0].alter_column" in str(error)
    with pytest.raises(SchemaValidationError, match="public.cheap"):
        engine.plan()


def test_rename_column_leaves_the_views_reading_it_by_number(database_url, migrations_dir):
    """PostgreSQL binds a view to a column's number: after the rename the views read it under
    the new name and keep their own column names (what their readers see); down renames back."""
    def after_up(conn):
        definition = conn.execute("SELECT pg_get_viewdef('cheap'::regclass)").fetchone()[0]
        assert "price AS amount" in definition
        assert conn.execute("SELECT count(*) FROM cheap_labels WHERE doubled > 0").fetchone()[0] > 0

    run_lifecycle(database_url, migrations_dir, migration("rename_amount", """
        - rename_column: {table: prices, from: amount, to: price}
    """), VIEWS, after_up=after_up)


def test_drop_column_under_views_is_refused_naming_them(database_url, migrations_dir):
    run_sql(database_url, VIEWS)
    engine = engine_for(database_url, migrations_dir, migration("drop_amount", """
        - drop_column: {table: prices, column: amount}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert "used by view(s) public.cheap, public.totals" in str(error)


# VIEWS' views again, idempotent (a raw_sql's down may run when its up did not)
RECREATE = VIEWS.split("CREATE VIEW cheap ", 1)[1].replace("CREATE VIEW", "CREATE OR REPLACE VIEW") \
    .replace("MATERIALIZED VIEW totals AS", "MATERIALIZED VIEW IF NOT EXISTS totals AS") \
    .replace("UNIQUE INDEX", "UNIQUE INDEX IF NOT EXISTS")
RECREATE = "CREATE OR REPLACE VIEW cheap " + RECREATE
DROP = "DROP VIEW IF EXISTS cheap_labels; DROP MATERIALIZED VIEW IF EXISTS totals; DROP VIEW IF EXISTS cheap"


def test_drop_column_under_views_a_raw_sql_declares_it_drops(database_url, migrations_dir):
    without = ("CREATE OR REPLACE VIEW cheap AS SELECT id FROM prices; "
               "CREATE MATERIALIZED VIEW IF NOT EXISTS totals AS SELECT count(*) AS n FROM prices")

    def after_up(conn):
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'prices'::regclass "
                            "AND attname = 'amount' AND NOT attisdropped").fetchone()[0] == 0

    def after_down(conn):
        assert _totals(conn) == (120, Decimal("4962.00"))

    run_lifecycle(database_url, migrations_dir, migration("drop_amount_declared", f"""
        - raw_sql:
            table: prices
            up: "{DROP}"
            down: {json.dumps(RECREATE)}
            drops: [cheap, cheap_labels, totals]
        - drop_column: {{table: prices, column: amount}}
        - raw_sql:
            table: prices
            step: complete
            up: "{without}"
            down: "DROP MATERIALIZED VIEW IF EXISTS totals; DROP VIEW IF EXISTS cheap"
    """), VIEWS, after_up=after_up, after_down=after_down)
