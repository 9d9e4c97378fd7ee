"""The record of each table's backup: the table `backups`.

The backup tables themselves live in `migration_dags_backup` and are made and dropped by
backup.py; here is only what a migration needs to prove and restore them later: where the copy
is, its row count, its fingerprints and the key rows are restored by.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..identifiers import TableName
from .schema import BACKUP_SCHEMA, BACKUPS, state_exists


@dataclass(frozen=True)
class BackupRecord:
    source: TableName
    backup: TableName
    row_count: int
    data_fingerprint: str
    schema_fingerprint: str
    key_columns: list[str]


def backups(conn: psycopg.Connection, migration: str) -> list[BackupRecord]:
    if not state_exists(conn):
        return []
    rows = conn.execute(
        f"""SELECT source_schema, source_table, backup_table, row_count, data_fingerprint,
                   schema_fingerprint, key_columns
            FROM {BACKUPS} WHERE migration = %s ORDER BY source_schema, source_table""",
        (migration,),
    ).fetchall()
    return [
        BackupRecord(TableName(s, t), TableName(BACKUP_SCHEMA, b), n, df, sf, list(k))
        for s, t, b, n, df, sf, k in rows
    ]


def backup_row_count(conn: psycopg.Connection, migration: str, table: TableName) -> int | None:
    """The row count of `table` when `migration` backed it up; None when it did not."""
    if not conn.execute(f"SELECT to_regclass('{BACKUPS}') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute(
        f"""SELECT row_count FROM {BACKUPS}
            WHERE migration = %s AND source_schema = %s AND source_table = %s""",
        (migration, table.schema, table.name),
    ).fetchone()
    return None if row is None else int(row[0])


def record_backup(conn: psycopg.Connection, migration: str, run_id: str | None, rec: BackupRecord) -> None:
    conn.execute(
        f"""INSERT INTO {BACKUPS} (migration, source_schema, source_table, backup_table,
                run_id, row_count, data_fingerprint, schema_fingerprint, key_columns)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (migration, source_schema, source_table) DO UPDATE SET
                backup_table = EXCLUDED.backup_table, run_id = EXCLUDED.run_id,
                row_count = EXCLUDED.row_count, data_fingerprint = EXCLUDED.data_fingerprint,
                schema_fingerprint = EXCLUDED.schema_fingerprint, key_columns = EXCLUDED.key_columns,
                created_at = now()""",
        (migration, rec.source.schema, rec.source.name, rec.backup.name, run_id, rec.row_count,
         rec.data_fingerprint, rec.schema_fingerprint, rec.key_columns),
    )


def forget_backups(conn: psycopg.Connection, migration: str) -> None:
    conn.execute(f"DELETE FROM {BACKUPS} WHERE migration = %s", (migration,))
