"""The state tables in the target database, in the tool's own schema `migration_dags`.

    applied_steps       one row per (migration, step) that is applied; up inserts, down deletes,
                        each in the same transaction as the step's last action where possible
    backups             the backup copy of each touched table, with its row count and fingerprints
    backfill_ranges     one row per key-range partition: bounds, position reached, rows done

Re-running an applied step is a no-op; `down` undoes only what is recorded here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from ..identifiers import TableName

STATE_SCHEMA = "migration_dags"
BACKUP_SCHEMA = "migration_dags_backup"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {BACKUP_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.applied_steps (
    migration text NOT NULL,
    step text NOT NULL,
    run_id text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    details jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (migration, step)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.backups (
    migration text NOT NULL,
    source_schema text NOT NULL,
    source_table text NOT NULL,
    backup_table text NOT NULL,
    run_id text,
    row_count bigint NOT NULL,
    data_fingerprint text NOT NULL,
    schema_fingerprint text NOT NULL,
    key_columns text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, source_schema, source_table)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.backfill_ranges (
    migration text NOT NULL,
    partition_key text NOT NULL,
    task_index int NOT NULL,
    lower_key jsonb,
    upper_key jsonb,
    position_key jsonb,
    rows_done bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, partition_key, task_index)
);
"""


def ensure_state_tables(conn: psycopg.Connection) -> None:
    if not state_exists(conn):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7365)")  # two first runs at once
            conn.execute(_DDL)


def applied_steps(conn: psycopg.Connection, migration: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(
        f"SELECT step, run_id, applied_at, details FROM {STATE_SCHEMA}.applied_steps WHERE migration = %s",
        (migration,),
    ).fetchall()
    return {s: {"run_id": r, "applied_at": a, "details": d} for s, r, a, d in rows}


def is_applied(conn: psycopg.Connection, migration: str, step: str) -> bool:
    return conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {STATE_SCHEMA}.applied_steps WHERE migration = %s AND step = %s)",
        (migration, step),
    ).fetchone()[0]


def mark_applied(
    conn: psycopg.Connection, migration: str, step: str, run_id: str | None, details: dict
) -> None:
    conn.execute(
        f"""INSERT INTO {STATE_SCHEMA}.applied_steps (migration, step, run_id, details)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (migration, step) DO UPDATE SET run_id = EXCLUDED.run_id,
                applied_at = now(), details = EXCLUDED.details""",
        (migration, step, run_id, json.dumps(details, default=str)),
    )


def mark_undone(conn: psycopg.Connection, migration: str, step: str) -> None:
    conn.execute(
        f"DELETE FROM {STATE_SCHEMA}.applied_steps WHERE migration = %s AND step = %s",
        (migration, step),
    )


@dataclass(frozen=True)
class BackupRecord:
    source: TableName
    backup: TableName
    row_count: int
    data_fingerprint: str
    schema_fingerprint: str
    key_columns: list[str]


def state_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass('migration_dags.backfill_ranges') IS NOT NULL").fetchone()[0]


def backups(conn: psycopg.Connection, migration: str) -> list[BackupRecord]:
    if not state_exists(conn):
        return []
    rows = conn.execute(
        f"""SELECT source_schema, source_table, backup_table, row_count, data_fingerprint,
                   schema_fingerprint, key_columns
            FROM {STATE_SCHEMA}.backups WHERE migration = %s ORDER BY source_schema, source_table""",
        (migration,),
    ).fetchall()
    return [
        BackupRecord(TableName(s, t), TableName(BACKUP_SCHEMA, b), n, df, sf, list(k))
        for s, t, b, n, df, sf, k in rows
    ]


def record_backup(conn: psycopg.Connection, migration: str, run_id: str | None, rec: BackupRecord) -> None:
    conn.execute(
        f"""INSERT INTO {STATE_SCHEMA}.backups (migration, source_schema, source_table, backup_table,
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
    conn.execute(f"DELETE FROM {STATE_SCHEMA}.backups WHERE migration = %s", (migration,))


def drop_state_if_unused(conn: psycopg.Connection) -> bool:
    """Drop the tool's schemas when nothing in them is left: no migration has a step applied, a
    backup, a partition plan, a saved column, a function or any other object there.  After the
    last `down`, `pg_dump --schema-only` then prints the database exactly as before the first `up`.
    Runs under the migration lock; RESTRICT keeps anything we did not expect."""
    known = ["applied_steps", "backups", "backfill_ranges", "saved_columns"]
    with conn.transaction():
        for table in known:
            if conn.execute(f"SELECT to_regclass('{STATE_SCHEMA}.{table}') IS NOT NULL").fetchone()[0]:
                if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {STATE_SCHEMA}.{table})").fetchone()[0]:
                    return False
        others = conn.execute(
            """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE (n.nspname = %s AND c.relname <> ALL(%s) AND c.relkind IN ('r','v','m','p','f'))
                  OR (n.nspname = %s AND c.relkind IN ('r','v','m','p','f'))""",
            (STATE_SCHEMA, known, BACKUP_SCHEMA),
        ).fetchone()[0]
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN (%s, %s)",
            (STATE_SCHEMA, BACKUP_SCHEMA),
        ).fetchone()[0]
        if others or functions:
            return False
        for table in known:
            conn.execute(f"DROP TABLE IF EXISTS {STATE_SCHEMA}.{table}")
        conn.execute(f"DROP SCHEMA IF EXISTS {BACKUP_SCHEMA} RESTRICT")
        conn.execute(f"DROP SCHEMA IF EXISTS {STATE_SCHEMA} RESTRICT")
    return True


def reset_ranges(conn: psycopg.Connection, migration: str, keys: list[str]) -> None:
    """Forget the progress of these backfill partitions (their plan stays)."""
    conn.execute(
        f"UPDATE {STATE_SCHEMA}.backfill_ranges SET done = false, rows_done = 0, position_key = NULL"
        " WHERE migration = %s AND partition_key = ANY(%s)", (migration, list(keys)))
