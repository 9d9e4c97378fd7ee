"""rename_column: switched at cutover, followed by views, undone by uncomplete; refusals."""

from __future__ import annotations

import re

import psycopg
import pytest
from operations.lifecycle import assert_unchanged_by, engine_for, run_lifecycle, run_sql
from operations.shop import SHOP, migration

from migration_dags.errors import (
    ColumnAlreadyExistsError, ColumnDoesNotExistError, SchemaValidationError, SpecError,
)


def _view(conn):
    return conn.execute("SELECT pg_get_viewdef('order_summary'::regclass)").fetchone()[0]


def test_rename_columns_views_follow(database_url, migrations_dir):
    views_before = []

    def after_up(conn):
        # the view now reads the renamed column and still shows it under its old name
        # (PostgreSQL 16 leaves out the table name a one-table view's text had up to 15)
        assert re.search(r"(orders\.)?\bstate AS status\b", _view(conn))
        assert conn.execute("SELECT count(*) FROM order_summary WHERE status = 'paid'").fetchone() == (100,)
        columns = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum")]
        assert columns == ["id", 'E-mail "address"', "name", "created_at"]
        # SQL inside functions names columns by name: the user's trigger does not follow the
        # rename (which is why the migration had to list it in triggers_reviewed)
        with pytest.raises(psycopg.Error, match="Email"):
            conn.execute("UPDATE customers SET name = name WHERE false OR true")

    def after_down(conn):
        views_before.append(_view(conn))
        assert not re.search(r"\bstate\b", views_before[0])

    run_lifecycle(database_url, migrations_dir, migration("renames", '''
        - rename_column: {table: orders, from: status, to: state}
        - rename_column: {table: customers, from: Email, to: 'E-mail "address"',
                          triggers_reviewed: [customers_normalize_email]}
    '''), SHOP, after_up=after_up, after_down=after_down)


def test_nothing_is_renamed_before_cutover(database_url, migrations_dir, conn):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("late_rename", """
        - rename_column: {table: orders, from: status, to: state}
    """))
    for step in ("backup", "schema_change", "backfill", "validation"):
        engine.up(step)
    assert conn.execute("SELECT count(*) FROM orders WHERE status = 'new'").fetchone() == (100,)
    engine.up("cutover")
    assert conn.execute("SELECT count(*) FROM orders WHERE state = 'new'").fetchone() == (100,)


@pytest.mark.parametrize(
    "operation, error",
    [
        ("{table: orders, from: nope, to: other}", ColumnDoesNotExistError),
        ("{table: orders, from: status, to: total}", ColumnAlreadyExistsError),
        # the user trigger reads NEW."Email": every write would fail after the rename
        ("{table: customers, from: Email, to: email}", SchemaValidationError),
        ("{table: customers, from: Email, to: email, triggers_reviewed: [other]}",
         SchemaValidationError),
    ],
)
def test_rename_column_refusals_change_nothing(database_url, migrations_dir, operation, error):
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("refused", f"- rename_column: {operation}"))
    assert_unchanged_by(database_url, lambda: engine.up("backup"), error)


def test_a_rename_validated_against_earlier_operations(database_url, migrations_dir):
    """The second rename sees the first one's result: `state` exists by then."""
    run_sql(database_url, SHOP)
    engine = engine_for(database_url, migrations_dir, migration("twice", """
        - rename_column: {table: orders, from: status, to: state}
        - rename_column: {table: orders, from: note, to: state}
    """))
    error = assert_unchanged_by(database_url, lambda: engine.up("backup"), ColumnAlreadyExistsError)
    assert "operations[1]" in error.where


def test_renaming_to_the_same_name_is_a_spec_error(migrations_dir):
    with pytest.raises(SpecError, match="same name"):
        engine_for("postgresql://unused", migrations_dir, migration("same", """
            - rename_column: {table: orders, from: status, to: status}
        """))


def test_a_trigger_naming_the_column_in_its_arguments_is_refused_by_name(database_url,
                                                                        migrations_dir):
    """pagila's film: tsvector_update_trigger(fulltext, ..., 'title', 'description'); renamed,
    every insert or update of film failed with 'column "description" does not exist'."""
    run_sql(database_url, SHOP + """
        ALTER TABLE orders ADD COLUMN search tsvector;
        CREATE TRIGGER orders_search BEFORE INSERT OR UPDATE ON orders FOR EACH ROW
            EXECUTE FUNCTION tsvector_update_trigger(search, 'pg_catalog.english', note);""")
    engine = engine_for(database_url, migrations_dir, migration("rename_note", """
        - rename_column: {table: orders, from: note, to: remark}
    """))
    raised = assert_unchanged_by(database_url, lambda: engine.up("backup"), SchemaValidationError)
    assert ("trigger orders_search (names it in its arguments) on public.orders uses column 'note' "
            "by name" in str(raised))
    assert "triggers_reviewed: [orders_search]" in str(raised)
