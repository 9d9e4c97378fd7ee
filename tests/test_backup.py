"""Backups copy a consistent snapshot; restore puts rows back exactly, by key or without one."""

from __future__ import annotations

from migration_dags.backup_tables import restore_table, take_backup
from migration_dags.fingerprint import data_fingerprint, schema_fingerprint
from migration_dags.identifiers import TableName
from migration_dags.state import ensure_state_tables

T = TableName("public", "Order Items")


def setup(conn, with_key=True):
    key = "PRIMARY KEY" if with_key else ""
    conn.execute(f'CREATE TABLE "Order Items" (id int {key}, "Note" text, qty numeric, tags text[])')
    conn.execute(
        """INSERT INTO "Order Items" SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END,
           g * 1.5, ARRAY['a', NULL] FROM generate_series(1, 500) g"""
    )
    ensure_state_tables(conn)


def mess_up(conn):
    conn.execute('DELETE FROM "Order Items" WHERE id % 7 = 0')
    conn.execute('UPDATE "Order Items" SET "Note" = NULL, qty = -1 WHERE id % 5 = 0')
    conn.execute("""INSERT INTO "Order Items" VALUES (9999, 'new', 1, NULL)""")


def test_backup_records_count_and_fingerprints(conn):
    setup(conn)
    rec = take_backup(conn, "m", "run1", T)
    assert rec.row_count == 500
    assert rec.key_columns == ["id"]
    assert rec.data_fingerprint == data_fingerprint(conn, T)[1]
    assert rec.schema_fingerprint == schema_fingerprint(conn, T)


def test_restore_by_key_is_exact(conn):
    setup(conn)
    rec = take_backup(conn, "m", "run1", T)
    mess_up(conn)
    assert data_fingerprint(conn, T)[1] != rec.data_fingerprint
    changed = restore_table(conn, rec)
    assert changed > 0
    assert data_fingerprint(conn, T)[1] == rec.data_fingerprint
    assert restore_table(conn, rec) == 0  # nothing left to change


def test_restore_without_key_is_exact(conn):
    setup(conn, with_key=False)
    rec = take_backup(conn, "m", "run1", T)
    assert rec.key_columns == []
    mess_up(conn)
    restore_table(conn, rec)
    assert data_fingerprint(conn, T)[1] == rec.data_fingerprint


def test_fingerprint_ignores_column_order_but_not_values(conn):
    conn.execute("CREATE TABLE a (id int, x text, y int)")
    conn.execute("CREATE TABLE b (y int, id int, x text)")
    conn.execute("INSERT INTO a VALUES (1, 'p', 2), (2, NULL, 3)")
    conn.execute("INSERT INTO b VALUES (2, 1, 'p'), (3, 2, NULL)")
    fa = data_fingerprint(conn, TableName("public", "a"))
    assert fa == data_fingerprint(conn, TableName("public", "b"))
    conn.execute("UPDATE b SET x = '' WHERE id = 2")
    assert fa != data_fingerprint(conn, TableName("public", "b"))


def test_restore_refuses_to_orphan_rows_that_reference_a_deleted_row(conn):
    """Rows the backup lacks are deleted with triggers on: a foreign key pointing at one makes the
    restore fail and change nothing, instead of leaving the child row orphaned."""
    import psycopg
    import pytest

    setup(conn)
    rec = take_backup(conn, "m", "run1", T)
    conn.execute("""INSERT INTO "Order Items" VALUES (9999, 'new', 1, NULL)""")
    conn.execute('CREATE TABLE child (id int PRIMARY KEY, item int REFERENCES "Order Items" (id))')
    conn.execute("INSERT INTO child VALUES (1, 9999)")
    conn.execute("""UPDATE "Order Items" SET qty = -1 WHERE id = 5""")
    before = data_fingerprint(conn, T)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        restore_table(conn, rec)
    assert data_fingerprint(conn, T) == before  # one transaction: nothing changed
