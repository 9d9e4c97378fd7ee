"""state.backups: the record of each table's backup, and the row count the progress uses."""

from __future__ import annotations

from migration_dags import state
from migration_dags.identifiers import TableName
from migration_dags.state import BACKUP_SCHEMA, BackupRecord


def test_a_backup_record_is_kept_replaced_and_forgotten(conn):
    orders = TableName("public", "orders")
    assert state.backup_row_count(conn, "m", orders) is None  # no state at all yet
    assert state.backups(conn, "m") == []
    state.ensure_state_tables(conn)
    assert state.backup_row_count(conn, "m", orders) is None
    rec = BackupRecord(orders, TableName(BACKUP_SCHEMA, "m_orders"), 120, "d1", "s1", ["id"])
    state.record_backup(conn, "m", "run-1", rec)
    state.record_backup(conn, "m", "run-2", BackupRecord(
        orders, TableName(BACKUP_SCHEMA, "m_orders_2"), 130, "d2", "s2", ["id"]))
    assert state.backups(conn, "m") == [BackupRecord(
        orders, TableName(BACKUP_SCHEMA, "m_orders_2"), 130, "d2", "s2", ["id"])]
    assert state.backup_row_count(conn, "m", orders) == 130
    assert state.backup_row_count(conn, "other", orders) is None
    state.forget_backups(conn, "m")
    assert state.backups(conn, "m") == [] and state.backup_row_count(conn, "m", orders) is None
