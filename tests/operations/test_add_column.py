"""add_column through the lifecycle, the trigger that keeps live writes in step, and its refusals."""

from __future__ import annotations

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnAlreadyExistsError,
    NoPrimaryKeyError,
    SpecError,
    TableDoesNotExistError,
)


def _column(conn, table: str, column: str):
    return conn.execute(
        """SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
           WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped""",
        (table, column),
    ).fetchone()


def _triggers(conn, table: str) -> list[str]:
    """The table's triggers but change capture's, which stays until the backup is dropped."""
    return [r[0] for r in conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal "
        "AND tgname NOT LIKE 'mdg\\_capture%%' ORDER BY 1",
        (table,))]


def test_add_column_lifecycle_with_default_and_up(database_url, migrations_dir):
    def after_up(conn):
        assert _column(conn, "customers", "vip") == ("boolean", False)
        assert _column(conn, "orders", "is_paid") == ("boolean", True)
        wrong = conn.execute("SELECT count(*) FROM orders WHERE is_paid <> (status = 'paid')").fetchone()[0]
        assert wrong == 0
        assert _triggers(conn, "orders") == []  # the up trigger is gone after cutover
        # no helper check constraint is left behind by the NOT NULL dance
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname LIKE 'mdg%'").fetchone()[0] == 0

    run_lifecycle(database_url, migrations_dir, migration("add_flags", """
        - add_column:
            table: customers
            column: {name: vip, type: boolean, default: "false"}
        - add_column:
            table: orders
            column: {name: is_paid, type: boolean, nullable: false}
            up: "status = 'paid'"
    """), SHOP, after_up=after_up)


def test_add_column_to_odd_identifiers_and_a_composite_key(database_url, migrations_dir):
    def after_up(conn):
        rows = conn.execute(
            '''SELECT count(*) FROM "Order Items" WHERE "Line ""Total""" IS DISTINCT FROM
               quantity * unit_price + "line ""no""" * 0'''
        ).fetchone()[0]
        assert rows == 0

    run_lifecycle(database_url, migrations_dir, migration("odd_names", '''
        - add_column:
            table: Order Items
            column: {name: 'Line "Total"', type: "numeric(12,2)"}
            up: 'quantity * unit_price + "line ""no""" * 0'
    '''), SHOP, after_up=after_up)


def test_add_column_not_null_with_up_on_a_partitioned_table(database_url, migrations_dir):
    def after_up(conn):
        assert _column(conn, "events", "is_click") == ("boolean", True)
        assert _column(conn, "events_2025", "is_click") == ("boolean", True)

    run_lifecycle(database_url, migrations_dir, migration("events_click", """
        - add_column:
            table: events
            column: {name: is_click, type: boolean, nullable: false}
            up: "coalesce(kind = 'click', false)"
    """), SHOP, after_up=after_up)


def test_live_writes_during_the_migration_are_filled_by_the_trigger(database_url, migrations_dir, conn):
    """Between start and cutover the application keeps writing without the new columns; the
    triggers fill them, the second one from the column the first one fills (an earlier operation of
    the same migration), next to the user's own trigger on the table."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("name_keys", """
        - add_column:
            table: customers
            column: {name: name_upper, type: text}
            up: "upper(name)"
        - add_column:
            table: customers
            column: {name: name_key, type: text}
            up: "name_upper || ':' || coalesce(\\"Email\\", '-')"
    """))
    engine.up("backup")
    engine.up("schema_change")
    conn.execute("""INSERT INTO customers (id, "Email", name) VALUES
                    ('00000000-0000-0000-0000-000000000001', 'New@Example.COM', 'New One')""")
    row = conn.execute("""SELECT "Email", name_upper, name_key FROM customers
                          WHERE id = '00000000-0000-0000-0000-000000000001'""").fetchone()
    assert row == ("new@example.com", "NEW ONE", "NEW ONE:new@example.com")
    conn.execute("UPDATE customers SET name = 'Renamed' WHERE id = '00000000-0000-0000-0000-000000000001'")
    assert conn.execute("SELECT name_key FROM customers WHERE name = 'Renamed'").fetchone()[0] == \
        "RENAMED:new@example.com"
    conn.execute("DELETE FROM customers WHERE id = '00000000-0000-0000-0000-000000000001'")
    for step in ("backfill", "validation", "cutover"):
        engine.up(step)
    assert conn.execute(
        "SELECT count(*) FROM customers WHERE name_key IS DISTINCT FROM upper(name) || ':' || coalesce(\"Email\", '-')"
    ).fetchone()[0] == 0
    for step in ("cutover", "validation", "backfill", "schema_change", "backup"):
        engine.down(step)
    assert _column(conn, "customers", "name_key") is None


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: nowhere, column: {name: x, type: int}}", TableDoesNotExistError),
        ("{table: orders, column: {name: status, type: text}}", ColumnAlreadyExistsError),
        ("{table: keyless, column: {name: x, type: int}, up: 'n + 1'}", NoPrimaryKeyError),
    ],
)
def test_add_column_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP + "CREATE TABLE keyless (n int); INSERT INTO keyless VALUES (1), (2);")
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- add_column: {operation}"))
    raised = assert_unchanged_by(database_url, lambda: engine.up("backup"), error)
    assert "operations[0].add_column" in raised.where


def test_a_not_null_column_without_default_or_up_is_a_spec_error(migrations_dir):
    with pytest.raises(SpecError) as caught:
        engine_for("postgresql://unused", migrations_dir, migration("bad_column", """
            - add_column: {table: orders, column: {name: x, type: int, nullable: false}}
        """))
    assert caught.value.field == "operations[0].add_column.column.nullable"
