"""Small migrations and a seeded table for the orchestration and CLI tests.

Imported as `orchestration.samples` (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import yaml

from migration_dags.fingerprint import data_fingerprint, schema_fingerprint
from migration_dags.identifiers import TableName

ITEMS = TableName("public", "items")
ITEM_ROWS = 200

# A NOT NULL column filled from each row's id: 200 rows in partitions of 50 -> 5 key ranges.
ADD_FLAG = """
name: add_flag
description: Add a NOT NULL flag to items, true for even ids.
tables: [items]
settings: {partition_rows: 50, batch_size: 20, lock_timeout_ms: 500, retries: 2}
operations:
  - add_column:
      table: items
      column: {name: flag, type: boolean, nullable: false}
      up: "id % 2 = 0"
"""

# Its up expression changes between the backfill and the check, so the parity check always fails.
CLOCK_STAMP = """
name: clock_stamp
description: A column whose parity check can never pass.
tables: [items]
settings: {partition_rows: 100, batch_size: 50}
operations:
  - add_column:
      table: items
      column: {name: stamped, type: double precision}
      up: "extract(epoch from clock_timestamp())"
"""

# Validation fails as above, and the rollback fails too: the raw_sql down cannot run.
CLOCK_STAMP_BAD_DOWN = CLOCK_STAMP.replace("name: clock_stamp", "name: clock_stamp_bad_down") + """
  - raw_sql:
      up: "CREATE TABLE IF NOT EXISTS side_table (id int)"
      down: "SELECT 1 / 0"
"""

# Nothing to backfill: its backfill step runs on the single placeholder partition.
ADD_VIEW = """
name: add_view
description: A view over items.
operations:
  - raw_sql:
      up: "CREATE VIEW even_items AS SELECT * FROM items WHERE id % 2 = 0"
      down: "DROP VIEW IF EXISTS even_items"
"""


def write_migration(folder: Path, text: str) -> Path:
    name = yaml.safe_load(text)["name"]
    path = Path(folder) / f"{name}.yaml"
    path.write_text(text)
    return path


def seed_items(url: str, rows: int = ITEM_ROWS) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, %s) g", (rows,))


def snapshot(url: str) -> dict:
    """What a rollback must restore: items' schema and data, and every object in schema public."""
    with psycopg.connect(url, autocommit=True) as conn:
        objects = conn.execute(
            """SELECT c.relkind::text || ':' || c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
               UNION ALL SELECT 'function:' || p.proname FROM pg_proc p
               JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'
               UNION ALL SELECT 'trigger:' || tgname FROM pg_trigger WHERE NOT tgisinternal
               ORDER BY 1"""
        ).fetchall()
        return {
            "schema": schema_fingerprint(conn, ITEMS),
            "data": data_fingerprint(conn, ITEMS),
            "objects": [r[0] for r in objects],
        }


def backup_tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'migration_dags_backup'"
        )]
