"""Backups of touched tables, in the tool's schema `migration_dags_backup`, and exact restores.

A backup is taken in one REPEATABLE READ transaction, so the copy, its row count and its
fingerprint describe the same snapshot of the source.  A restore puts rows back by key: deletes
rows the backup does not have, updates rows that differ, inserts rows that are missing; it never
touches a row that already equals its backup, and it runs in one transaction.
"""

from __future__ import annotations

import psycopg

from .fingerprint import column_names, data_fingerprint, schema_fingerprint
from .identifiers import TableName, quote, short_name
from .schema_model import primary_key_columns
from .state import BACKUP_SCHEMA, BackupRecord


def backup_table_name(migration: str, run_id: str | None, source: TableName) -> TableName:
    run = (run_id or "manual")[:8]
    return TableName(BACKUP_SCHEMA, short_name(migration, run, source.schema, source.name))


def take_backup(
    conn: psycopg.Connection, migration: str, run_id: str | None, source: TableName
) -> BackupRecord:
    target = backup_table_name(migration, run_id, source)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(f"DROP TABLE IF EXISTS {target.sql}")
        conn.execute(f"CREATE TABLE {target.sql} AS SELECT * FROM {source.sql}")
        count, fingerprint = data_fingerprint(conn, target, column_names(conn, source))
        schema_fp = schema_fingerprint(conn, source)
        keys = primary_key_columns(conn, source)
    if keys:
        # An index on the key makes restores and per-key comparisons cheap.
        conn.execute(
            f"CREATE INDEX ON {target.sql} ({', '.join(quote(k) for k in keys)})"
        )
    conn.execute(f"ANALYZE {target.sql}")
    return BackupRecord(source, target, count, fingerprint, schema_fp, keys)


def drop_backup(conn: psycopg.Connection, record: BackupRecord) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {record.backup.sql}")


def _restorable_columns(conn: psycopg.Connection, record: BackupRecord) -> list[str]:
    """Columns both in the backup and in the table now, not generated."""
    live = set(column_names(conn, record.source))
    generated = {
        r[0]
        for r in conn.execute(
            """SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)
               AND attgenerated <> ''""",
            (record.source.sql,),
        )
    }
    return [c for c in column_names(conn, record.backup) if c in live and c not in generated]


def restore_table(conn: psycopg.Connection, record: BackupRecord) -> int:
    """Make the table's rows exactly the backup's. Returns the number of rows changed."""
    cols = _restorable_columns(conn, record)
    col_list = ", ".join(quote(c) for c in cols)
    src, bak = record.source.sql, record.backup.sql
    changed = 0
    with conn.transaction():
        # putting back old values is not a user's write: keep user triggers (updated_at, audit)
        # from firing (needs superuser, or GRANT SET ON PARAMETER session_replication_role)
        conn.execute("SET LOCAL session_replication_role = replica")
        if not record.key_columns:
            changed += conn.execute(f"DELETE FROM {src}").rowcount
            changed += conn.execute(
                f"INSERT INTO {src} ({col_list}) OVERRIDING SYSTEM VALUE SELECT {col_list} FROM {bak}"
            ).rowcount
            return changed
        match = " AND ".join(f"s.{quote(k)} = b.{quote(k)}" for k in record.key_columns)
        changed += conn.execute(
            f"DELETE FROM {src} s WHERE NOT EXISTS (SELECT 1 FROM {bak} b WHERE {match})"
        ).rowcount
        changed += restore_columns_sql(conn, record, cols)
        changed += conn.execute(
            f"INSERT INTO {src} ({col_list}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join('b.' + quote(c) for c in cols)} FROM {bak} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {src} s WHERE {match})"
        ).rowcount
    return changed


def restore_columns_sql(conn: psycopg.Connection, record: BackupRecord, columns: list[str]) -> int:
    """Put `columns` back to their backed-up values, for rows present in both; by key."""
    columns = [c for c in columns if c not in record.key_columns]
    if not columns or not record.key_columns:
        return 0
    src, bak = record.source.sql, record.backup.sql
    match = " AND ".join(f"s.{quote(k)} = b.{quote(k)}" for k in record.key_columns)
    sets = ", ".join(f"{quote(c)} = b.{quote(c)}" for c in columns)
    differs = (
        "ROW(" + ", ".join(f"s.{quote(c)}" for c in columns) + ") IS DISTINCT FROM ROW("
        + ", ".join(f"b.{quote(c)}" for c in columns) + ")"
    )
    return conn.execute(
        f"UPDATE {src} s SET {sets} FROM {bak} b WHERE {match} AND {differs}"
    ).rowcount
