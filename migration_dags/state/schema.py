"""The tool's own schemas and every table in them, defined once.

    migration_dags          the state tables below, and the trigger functions operations install
    migration_dags_backup   the backup copy of each table a migration touches (backup.py), and
                            beside it the record of the application's writes (capture.py)

State tables, in `migration_dags`:

    applied_steps       one row per (migration, step) that is applied; up inserts, down deletes,
                        each in the same transaction as the step's last action where possible
    backups             the backup copy of each touched table, with its row count and fingerprints
    backfill_ranges     one row per key-range partition: bounds, position reached, rows done
    started_steps       one row per (migration, step) started and not yet finished (started.py):
                        written before the step's first change, deleted when it is recorded
    saved_columns       definitions of the columns drop_column drops (created by its start, the
                        only operation that needs it)
    saved_views         views alter_column carries over its swap (saved_views.py; created by its
                        cutover)
    migration_files     checksum and text of the file each migration was applied from (files.py;
                        created on first use), for drift.py
    inserted_rows       keys of the rows insert_rows inserted (inserted_rows.py; created by its
                        start), so its undo deletes exactly those

Re-running an applied step is a no-op; `down` undoes only what is recorded here.
"""

from __future__ import annotations

import psycopg

STATE_SCHEMA = "migration_dags"
BACKUP_SCHEMA = "migration_dags_backup"

APPLIED_STEPS = f"{STATE_SCHEMA}.applied_steps"
BACKUPS = f"{STATE_SCHEMA}.backups"
BACKFILL_RANGES = f"{STATE_SCHEMA}.backfill_ranges"
SAVED_COLUMNS = f"{STATE_SCHEMA}.saved_columns"
STARTED_STEPS = f"{STATE_SCHEMA}.started_steps"
MIGRATION_FILES = f"{STATE_SCHEMA}.migration_files"
INSERTED_ROWS = f"{STATE_SCHEMA}.inserted_rows"
STATE_TABLES = ("applied_steps", "backups", "backfill_ranges", "saved_columns", "started_steps",
                "migration_files", "saved_views", "inserted_rows")

STATE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE SCHEMA IF NOT EXISTS {BACKUP_SCHEMA};
CREATE TABLE IF NOT EXISTS {APPLIED_STEPS} (
    migration text NOT NULL,
    step text NOT NULL,
    run_id text,
    applied_at timestamptz NOT NULL DEFAULT now(),
    details jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (migration, step)
);
CREATE TABLE IF NOT EXISTS {BACKUPS} (
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
CREATE TABLE IF NOT EXISTS {BACKFILL_RANGES} (
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
CREATE TABLE IF NOT EXISTS {STARTED_STEPS} (
    migration text NOT NULL,
    step text NOT NULL,
    run_ids text[] NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, step)
);
"""

# Run as an action of drop_column's start (saved_columns.save_actions), in its transaction.
SAVED_COLUMNS_DDL = f"""CREATE TABLE IF NOT EXISTS {SAVED_COLUMNS} (
    migration text NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    type_sql text NOT NULL,
    collation_sql text,             -- only when not the type's default collation
    not_null boolean NOT NULL,
    default_sql text,               -- the generation expression when generated
    generated boolean NOT NULL,
    comment text,
    dependents jsonb NOT NULL,      -- [{{kind, name, ddl}}]: indexes and constraints dropped with it
    dropped boolean NOT NULL DEFAULT false,
    saved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, table_schema, table_name, column_name)
)"""


def ensure_state_tables(conn: psycopg.Connection) -> None:
    # started_steps came later than the others: state made by an older version lacks it
    if not state_exists(conn) or not conn.execute(
            f"SELECT to_regclass('{STARTED_STEPS}') IS NOT NULL").fetchone()[0]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7365)")  # two first runs at once
            conn.execute(STATE_DDL)


def state_exists(conn: psycopg.Connection) -> bool:
    return conn.execute(f"SELECT to_regclass('{BACKFILL_RANGES}') IS NOT NULL").fetchone()[0]


def drop_state_if_unused(conn: psycopg.Connection) -> bool:
    """Drop the tool's schemas when nothing in them is left: no migration has a step applied, a
    backup, a partition plan, a saved column, a function or any other object there.  After the
    last `down`, `pg_dump --schema-only` then prints the database exactly as before the first `up`.
    Runs under the migration lock; RESTRICT keeps anything we did not expect."""
    known = list(STATE_TABLES)
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
