"""Backups of touched tables, in the tool's schema `migration_dags_backup`, and exact restores.

A backup is taken in one REPEATABLE READ transaction, so the copy, its row count and its
fingerprint describe the same snapshot of the source.  It is a full copy, or, for a table the
migration only adds to (steps/backup.py says which), its key and one 64-bit hash per row
(RECORD_HASH, the data fingerprint's own row hash; ROW_HASH in backups taken before v2
fingerprints): enough for the proof to compare every row the application did not write; there
is nothing to put back, and it gets no index (the proof reads it whole; the index cost 0.3-0.45 s
per 1M rows).  A restore puts rows back by key: deletes rows the backup does not have, updates
rows that differ, inserts rows that are missing; it never touches a row that already equals its
backup, and it runs in one transaction.
"""

from __future__ import annotations

import psycopg

from .db.tool_writes import MARK_TOOL_WRITE
from .fingerprint import (
    column_names, column_types, data_fingerprint, hashed_fingerprint, schema_fingerprint,
    typed_row_hash_sql,
)
from .identifiers import TableName, literal, quote, short_name
from .schema_model import primary_key_columns
from .state import BACKUP_SCHEMA, BackupRecord
from .state.capture import capture_table


def backup_table_name(migration: str, run_id: str | None, source: TableName) -> TableName:
    run = (run_id or "manual")[:8]
    return TableName(BACKUP_SCHEMA, short_name(migration, run, source.schema, source.name))


# The one column of a hashes-only backup besides the key: v2 row hashes (fingerprint.py), or,
# in a backup taken by a version before them, the hash of the row's text.
RECORD_HASH = "mdg__record_hash"
ROW_HASH = "mdg__row_hash"


def take_backup(
    conn: psycopg.Connection, migration: str, run_id: str | None, source: TableName,
    hashes_only: bool = False,
) -> BackupRecord:
    target = backup_table_name(migration, run_id, source)
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(f"DROP TABLE IF EXISTS {target.sql}")
        keys = primary_key_columns(conn, source)
        if hashes_only:
            key_list = "".join(f"t.{quote(k)}, " for k in keys)
            conn.execute(f"CREATE TABLE {target.sql} AS SELECT {key_list}"
                         f"{typed_row_hash_sql(column_types(conn, source))} AS {quote(RECORD_HASH)} "
                         f"FROM {source.sql} AS t")
            count, fingerprint = hashed_fingerprint(conn, target, RECORD_HASH)
        else:
            conn.execute(f"CREATE TABLE {target.sql} AS SELECT * FROM {source.sql}")
            count, fingerprint = data_fingerprint(conn, target, column_names(conn, source))
        schema_fp = schema_fingerprint(conn, source)
    if keys and not hashes_only:  # a hashes-only backup is read whole (capture.py), never by key
        # An index on the key makes restores and per-key comparisons cheap.
        conn.execute(
            f"CREATE INDEX ON {target.sql} ({', '.join(quote(k) for k in keys)})"
        )
    conn.execute(f"ANALYZE {target.sql}")
    return BackupRecord(source, target, count, fingerprint, schema_fp, keys)


def hash_column(conn: psycopg.Connection, record: BackupRecord) -> str | None:
    """RECORD_HASH or ROW_HASH when the backup holds row hashes, not rows; else None."""
    row = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname IN (%s, %s) AND NOT attisdropped",
        (record.backup.sql, RECORD_HASH, ROW_HASH)).fetchone()
    return row[0] if row else None


def hashes_only(conn: psycopg.Connection, record: BackupRecord) -> bool:
    """Whether the backup holds row hashes, not rows."""
    return hash_column(conn, record) is not None


def drop_backup(conn: psycopg.Connection, record: BackupRecord) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {record.backup.sql}")


def restorable_columns(conn: psycopg.Connection, record: BackupRecord) -> list[str]:
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
    """Make the table's rows exactly the backup's, discarding every write since the backup and
    the record of the application's writes with them. Returns the number of rows changed."""
    cols = restorable_columns(conn, record)
    col_list = ", ".join(quote(c) for c in cols)
    src, bak, keys = record.source, record.backup, record.key_columns
    changed = 0
    with conn.transaction():
        conn.execute(f"LOCK TABLE {src.sql} IN SHARE ROW EXCLUSIVE MODE")
        conn.execute(MARK_TOOL_WRITE)
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (capture_table(bak).sql,)).fetchone()[0]:
            conn.execute(f"TRUNCATE {capture_table(bak).sql}")
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


def delete_missing_sql(
    table: TableName, backup: TableName, keys: list[str], keep_writes: bool = False
) -> str:
    """Delete the rows of `table` (as s) whose key the backup (as b) does not have; keep_writes:
    not the rows the application wrote since the backup (its inserts), with the table locked
    against writes for the statement."""
    sql = (
        f"DELETE FROM {table.sql} AS s\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM {backup.sql} AS b WHERE {_key_match(keys)})"
    )
    if not keep_writes:
        return sql
    cap = capture_table(backup)
    written = " AND ".join(f"w.{quote(k)} = s.{quote(k)}" for k in keys)
    return (f"LOCK TABLE {table.sql} IN SHARE ROW EXCLUSIVE MODE;\n{sql}\n"
            f"  AND NOT EXISTS (SELECT 1 FROM {cap.sql} AS w WHERE {written})")


def restore_columns_sql(
    table: TableName, backup: TableName, keys: list[str], columns: list[str],
    keep_writes: bool = False,
) -> str | None:
    """Set `columns` of every row present in the backup back to the backed-up values, writing
    only rows that differ; None when there is no column to restore (keys are what rows are
    matched on, never restored).

    keep_writes: a column the application wrote since the backup (state/capture.py) takes the value
    it wrote instead, in every row that still exists, backed up or not; the table is locked against
    writes for the statement, so no write lands between reading the capture and writing the row."""
    columns = [c for c in columns if c not in keys]
    if not columns or not keys:
        return None
    if keep_writes:
        return _restore_keeping_writes_sql(table, backup, keys, columns)
    sets = ", ".join(f"{quote(c)} = b.{quote(c)}" for c in columns)
    differs = (
        "ROW(" + ", ".join(f"s.{quote(c)}" for c in columns) + ") IS DISTINCT FROM ROW("
        + ", ".join(f"b.{quote(c)}" for c in columns) + ")"
    )
    return (
        f"UPDATE {table.sql} AS s SET {sets} FROM {backup.sql} AS b\n"
        f"WHERE {_key_match(keys)} AND {differs}"
    )


def _restore_keeping_writes_sql(
    table: TableName, backup: TableName, keys: list[str], columns: list[str]
) -> str:
    cap = capture_table(backup)
    written = f"(jsonb_populate_record(NULL::{table.sql}, v.written))"

    def value(c: str) -> str:
        # the application's write, else the backup's value, else (a row only the application
        # has, which never wrote this column) the row's own value, e.g. a re-added column's default
        return (f"CASE WHEN v.written ? {literal(c)} THEN {written}.{quote(c)} "
                f"WHEN v.in_backup THEN v.{quote(c)} ELSE s.{quote(c)} END")

    kcols = ", ".join(f"coalesce(b.{quote(k)}, w.{quote(k)}) AS {quote(k)}" for k in keys)
    bcols = ", ".join(f"b.{quote(c)}" for c in columns)
    join = " AND ".join(f"w.{quote(k)} = b.{quote(k)}" for k in keys)
    target = (f"SELECT {kcols}, b.{quote(keys[0])} IS NOT NULL AS in_backup, "
              f"coalesce(w.written, '{{}}') AS written, {bcols}\n"
              f"  FROM {backup.sql} AS b FULL JOIN {cap.sql} AS w ON {join}")
    sets = ", ".join(f"{quote(c)} = {value(c)}" for c in columns)
    differs = (
        "ROW(" + ", ".join(f"s.{quote(c)}" for c in columns) + ") IS DISTINCT FROM ROW("
        + ", ".join(value(c) for c in columns) + ")"
    )
    match = " AND ".join(f"s.{quote(k)} = v.{quote(k)}" for k in keys)
    return (
        f"LOCK TABLE {table.sql} IN SHARE ROW EXCLUSIVE MODE;\n"
        f"UPDATE {table.sql} AS s SET {sets}\nFROM ({target}) AS v\n"
        f"WHERE {match} AND {differs}"
    )
