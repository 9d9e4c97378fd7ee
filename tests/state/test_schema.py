"""state.schema: the tool's schemas appear on the first run and go when nothing is left in them."""

from __future__ import annotations

from migration_dags import state
from migration_dags.state import BACKUP_SCHEMA, STATE_SCHEMA
from migration_dags.state.saved_views import SAVED_VIEWS_DDL
from migration_dags.state.inserted_rows import INSERTED_ROWS_DDL
from migration_dags.state.schema import SAVED_COLUMNS_DDL, STATE_TABLES


def schemas(conn):
    return {r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname IN (%s, %s)", (STATE_SCHEMA, BACKUP_SCHEMA))}


def tables(conn):
    return {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (STATE_SCHEMA,))}


def test_state_tables_are_created_once(conn):
    assert not state.state_exists(conn)
    state.ensure_state_tables(conn)
    state.ensure_state_tables(conn)
    assert state.state_exists(conn)
    assert schemas(conn) == {STATE_SCHEMA, BACKUP_SCHEMA}
    # saved_columns: made by drop_column and alter_column; saved_views: by alter_column's
    # cutover; inserted_rows: by insert_rows only; migration_files: when a step is first applied
    assert tables(conn) == set(STATE_TABLES) - {"saved_columns", "migration_files", "saved_views",
                                                "inserted_rows"}
    conn.execute(SAVED_COLUMNS_DDL)
    conn.execute(SAVED_VIEWS_DDL)
    conn.execute(INSERTED_ROWS_DDL)
    state.record_file(conn, "m", "0" * 64, "name: m\n")
    assert tables(conn) == set(STATE_TABLES)
    assert state.recorded_file(conn, "m") == ("0" * 64, "name: m\n")
    state.forget_file(conn, "m")
    assert state.recorded_file(conn, "m") is None


def test_schemas_are_dropped_only_when_no_record_is_left(conn):
    state.ensure_state_tables(conn)
    conn.execute(SAVED_COLUMNS_DDL)
    state.mark_applied(conn, "m", "backup", None, {})
    assert state.drop_state_if_unused(conn) is False
    assert state.state_exists(conn)
    state.mark_undone(conn, "m", "backup")
    conn.execute(f"CREATE TABLE {BACKUP_SCHEMA}.left_behind (id int)")
    assert state.drop_state_if_unused(conn) is False  # a backup table nobody recorded
    conn.execute(f"DROP TABLE {BACKUP_SCHEMA}.left_behind")
    assert state.drop_state_if_unused(conn) is True
    assert schemas(conn) == set() and not state.state_exists(conn)
