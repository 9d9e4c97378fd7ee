"""add_check through the lifecycle (also on a partitioned table), violating rows, refusals."""

from __future__ import annotations

import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import SchemaValidationError, StepFailedError, TableDoesNotExistError


def _checks(conn):
    return conn.execute(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated
           FROM pg_constraint WHERE contype = 'c' AND conrelid <> 0 ORDER BY 1, 2""").fetchall()


def test_add_checks(database_url, migrations_dir):
    def after_up(conn):
        assert _checks(conn) == [
            ('"Order Items"', 'Quantity "positive"', "CHECK ((quantity > 0))", True),
            ("events", "events_kind_known", "CHECK ((kind = ANY (ARRAY['click'::text, 'view'::text])))", True),
            ("events_2024", "events_kind_known", "CHECK ((kind = ANY (ARRAY['click'::text, 'view'::text])))", True),
            ("events_2025", "events_kind_known", "CHECK ((kind = ANY (ARRAY['click'::text, 'view'::text])))", True),
            ("orders", "orders_total_non_negative", "CHECK ((total >= (0)::numeric))", True),
        ]

    run_lifecycle(database_url, migrations_dir, migration("checks", '''
        - add_check: {table: orders, name: orders_total_non_negative, check: "total >= 0"}
        - add_check: {table: Order Items, name: 'Quantity "positive"', check: "quantity > 0"}
        - add_check: {table: events, name: events_kind_known, check: "kind IN ('click', 'view')"}
    '''), SHOP, after_up=after_up)


def test_violating_rows_fail_the_start_and_leave_no_constraint(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("too_strict", """
        - add_check: {table: orders, name: orders_total_small, check: "total < 100"}
    """))
    engine.up("backup")
    error = assert_unchanged_by(database_url, lambda: engine.up("schema_change"), StepFailedError)
    assert "orders_total_small" in str(error)
    assert _checks(conn) == []


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: nowhere, name: c, check: 'true'}", TableDoesNotExistError),
        ("{table: orders, name: orders_pkey, check: 'true'}", SchemaValidationError),
    ],
)
def test_add_check_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- add_check: {operation}"))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), error)
