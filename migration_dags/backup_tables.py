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
    src, bak, keys = record.source, record.backup, record.key_columns
    changed = 0
    with conn.transaction():
        # Deleting runs with triggers on: a row another table references must make this fail
        # loudly (or cascade as the schema says), not leave orphans.
        changed += conn.execute(delete_missing_sql(src, bak, keys) if keys else f"DELETE FROM {src.sql}").rowcount
        # Putting back old values is not a user's write: keep user triggers (updated_at, audit)
        # from firing (needs superuser, or GRANT SET ON PARAMETER session_replication_role).
        conn.execute("SET LOCAL session_replication_role = replica")
        if not keys:
            changed += conn.execute(
                f"INSERT INTO {src.sql} ({col_list}) OVERRIDING SYSTEM VALUE SELECT {col_list} FROM {bak.sql}"
            ).rowcount
            return changed
        update = restore_columns_sql(src, bak, keys, cols)
        if update:
            changed += conn.execute(update).rowcount
        changed += conn.execute(
            f"INSERT INTO {src.sql} ({col_list}) OVERRIDING SYSTEM VALUE "
            f"SELECT {', '.join('b.' + quote(c) for c in cols)} FROM {bak.sql} AS b "
            f"WHERE NOT EXISTS (SELECT 1 FROM {src.sql} AS s WHERE {_key_match(keys)})"
        ).rowcount
    return changed


# -- the restore statements, shared with the undo actions (operations/restore.py) ----------------
def _key_match(keys: list[str]) -> str:
    return " AND ".join(f"s.{quote(k)} = b.{quote(k)}" for k in keys)


def delete_missing_sql(table: TableName, backup: TableName, keys: list[str]) -> str:
    """Delete the rows of `table` (as s) whose key the backup (as b) does not have."""
    return (
        f"DELETE FROM {table.sql} AS s\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {backup.sql} AS b WHERE {_key_match(keys)})"
    )


def restore_columns_sql(
    table: TableName, backup: TableName, keys: list[str], columns: list[str]
) -> str | None:
    """Set `columns` of every row present in the backup back to the backed-up values, writing
    only rows that differ; None when there is no column to restore (keys are what rows are
    matched on, never restored)."""
    columns = [c for c in columns if c not in keys]
    if not columns or not keys:
        return None
    sets = ", ".join(f"{quote(c)} = b.{quote(c)}" for c in columns)
    differs = (
        "ROW(" + ", ".join(f"s.{quote(c)}" for c in columns) + ") IS DISTINCT FROM ROW("
        + ", ".join(f"b.{quote(c)}" for c in columns) + ")"
    )
    return (
        f"UPDATE {table.sql} AS s SET {sets} FROM {backup.sql} AS b\n"
        f"WHERE {_key_match(keys)} AND {differs}"
    )
