"""Views carried over a column swap: saved, dropped and re-created inside one transaction.

PostgreSQL refuses to drop a column a view reads, and a view keeps reading a column by its number
through a rename. So alter_column's swap (and its undo) runs, in its one short transaction:

    save_sql      read every view over the column (view_catalog.py: transitively, with the
                  statements that re-create each exactly) into
                      migration_dags.saved_views   one row per (migration, table, column, view)
    drop_sql      drop them, deepest first
    ...           the swap itself (drop, rename)
    recreate_sql  run the saved statements, shallowest first: the views now read the column of
                  that name, i.e. the swapped-in one

The rows stay while the cutover is applied, so its undo drops the views (which read the new column
by then) and re-creates the very definitions they had before (`forget_sql` in the same transaction).
Each statement here is SQL text for an action, so `plan` shows it; the catalog is read when the
action runs, never before.
"""

from __future__ import annotations

import psycopg

from ..identifiers import TableName, literal
from ..view_catalog import views_with_statements_sql
from .schema import STATE_SCHEMA

SAVED_VIEWS = f"{STATE_SCHEMA}.saved_views"

SAVED_VIEWS_DDL = f"""CREATE TABLE IF NOT EXISTS {SAVED_VIEWS} (
    migration text NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    view_schema text NOT NULL,
    view_name text NOT NULL,
    kind text NOT NULL,            -- v: view, m: materialized view
    depth int NOT NULL,            -- 1: reads the column; n: reads a view of depth n - 1
    statements text[] NOT NULL,    -- re-create it exactly, run under search_path = ''
    saved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, table_schema, table_name, column_name, view_schema, view_name)
)"""


def _where(migration: str, table: TableName, column: str) -> str:
    return (f"migration = {literal(migration)} AND table_schema = {literal(table.schema)} "
            f"AND table_name = {literal(table.name)} AND column_name = {literal(column)}")


def save_sql(migration: str, table: TableName, column: str) -> str:
    """Record (afresh) the views over table.column as the catalog has them now."""
    return f"""{SAVED_VIEWS_DDL};
DO $save_views$
DECLARE mdg__path text := current_setting('search_path');
BEGIN
  PERFORM set_config('search_path', '', true);  -- names print qualified
  DELETE FROM {SAVED_VIEWS} WHERE {_where(migration, table, column)};
  INSERT INTO {SAVED_VIEWS} (migration, table_schema, table_name, column_name, view_schema,
      view_name, kind, depth, statements)
  SELECT {literal(migration)}, {literal(table.schema)}, {literal(table.name)}, {literal(column)},
      v.nspname, v.relname, v.relkind, v.depth, v.statements
  FROM ({views_with_statements_sql(table, column)}) AS v(nspname, relname, relkind, depth,
      statements, owner, bytes);
  PERFORM set_config('search_path', mdg__path, true);
END $save_views$"""


def drop_sql(migration: str, table: TableName, column: str) -> str:
    """Drop the saved views, deepest first (no CASCADE: anything else reading them stops it)."""
    return f"""{SAVED_VIEWS_DDL};
DO $drop_views$
DECLARE r record;
BEGIN
  FOR r IN SELECT view_schema, view_name, kind FROM {SAVED_VIEWS}
           WHERE {_where(migration, table, column)}
           ORDER BY depth DESC, view_schema DESC, view_name DESC LOOP
    EXECUTE format('DROP %s IF EXISTS %I.%I',
                   CASE r.kind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
                   r.view_schema, r.view_name);
  END LOOP;
END $drop_views$"""


def recreate_sql(migration: str, table: TableName, column: str) -> str:
    """Re-create the saved views exactly, shallowest first."""
    return f"""DO $recreate_views$
DECLARE
  r record;
  s text;
  mdg__path text := current_setting('search_path');
BEGIN
  PERFORM set_config('search_path', '', true);  -- as the statements were read
  FOR r IN SELECT statements FROM {SAVED_VIEWS} WHERE {_where(migration, table, column)}
           ORDER BY depth, view_schema, view_name LOOP
    FOREACH s IN ARRAY r.statements LOOP
      EXECUTE s;
    END LOOP;
  END LOOP;
  PERFORM set_config('search_path', mdg__path, true);
END $recreate_views$"""


def forget_sql(migration: str, table: TableName, column: str) -> str:
    return f"DELETE FROM {SAVED_VIEWS} WHERE {_where(migration, table, column)}"


def saved_view_names(conn: psycopg.Connection, migration: str) -> list[str]:
    """schema.name of every view saved for `migration` (for tests and status)."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SAVED_VIEWS,)).fetchone()[0]:
        return []
    return [f"{s}.{n}" for s, n in conn.execute(
        f"SELECT view_schema, view_name FROM {SAVED_VIEWS} WHERE migration = %s "
        "ORDER BY depth, view_schema, view_name", (migration,))]
