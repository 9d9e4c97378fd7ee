"""The definition of a column drop_column will drop, kept so its undo can re-add it exactly.

Once a column is dropped the catalog has forgotten its type, default, NOT NULL, collation, comment
and the indexes and constraints that went with it; the backup table only has its values. So
drop_column's start records all of that, read from the catalog just before anything changes, in

    migration_dags.saved_columns   one row per (migration, table, column)

and the engine hands the rows back to the operations in `OpContext.saved_columns` (engine.context
calls `read_saved_columns`). `dropped` is set in the same transaction as the DROP COLUMN and
cleared by the last action of the undo, so a half-done undo resumes where it stopped, and an undo
of a cutover that never dropped the column does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..actions import Action
from ..identifiers import TableName, literal
from .schema import SAVED_COLUMNS, SAVED_COLUMNS_DDL


@dataclass(frozen=True)
class Dependent:
    kind: str  # index | constraint
    name: str
    ddl: str


@dataclass(frozen=True)
class SavedColumn:
    table: TableName
    column: str
    type_sql: str
    collation_sql: str | None
    not_null: bool
    default_sql: str | None
    generated: bool
    comment: str | None
    dependents: tuple[Dependent, ...]
    dropped: bool


def _where(migration: str, table: TableName, column: str) -> str:
    return (f"migration = {literal(migration)} AND table_schema = {literal(table.schema)} "
            f"AND table_name = {literal(table.name)} AND column_name = {literal(column)}")


def _dependents_sql(table: TableName) -> str:
    """Indexes and constraints PostgreSQL drops along with the column `a` (pg_depend), as DDL that
    re-creates them under the same names: a jsonb list of {kind, name, ddl}. A partitioned
    table's index prints as ON ONLY (that form would leave it without its partitions' indexes),
    so that is taken out."""
    return f"""coalesce((SELECT jsonb_agg(x ORDER BY x->>'kind', x->>'name') FROM (
        SELECT jsonb_build_object('kind', 'constraint', 'name', c.conname, 'ddl',
               format('ALTER TABLE %s ADD CONSTRAINT %I %s', {literal(table.sql)}, c.conname,
                      pg_get_constraintdef(c.oid))) AS x
        FROM pg_constraint c
        WHERE c.conrelid = a.attrelid AND EXISTS (SELECT 1 FROM pg_depend dp
            WHERE dp.classid = 'pg_constraint'::regclass AND dp.objid = c.oid
              AND dp.refclassid = 'pg_class'::regclass AND dp.refobjid = a.attrelid
              AND dp.refobjsubid = a.attnum)
        UNION ALL
        SELECT jsonb_build_object('kind', 'index', 'name', ic.relname, 'ddl',
               regexp_replace(pg_get_indexdef(ic.oid), ' ON ONLY ', ' ON '))
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = a.attrelid AND EXISTS (SELECT 1 FROM pg_depend dp
            WHERE dp.classid = 'pg_class'::regclass AND dp.objid = i.indexrelid
              AND dp.refclassid = 'pg_class'::regclass AND dp.refobjid = a.attrelid
              AND dp.refobjsubid = a.attnum)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c   -- re-created by its constraint
            WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
    ) s), '[]'::jsonb)"""


def save_actions(migration: str, table: TableName, column: str) -> list[Action]:
    """Record the column's definition as the catalog has it now (a no-op when recorded)."""
    reg, col = table.regclass_literal, literal(column)
    dependents = _dependents_sql(table)
    collation = """CASE WHEN a.attcollation <> t.typcollation THEN (SELECT format('%I.%I', n.nspname,
        co.collname) FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
        WHERE co.oid = a.attcollation) END"""
    refusal = (f"drop_column: {table}.{column} is an identity column; dropping it loses its "
               "sequence, so it cannot be undone exactly: drop it with raw_sql")
    return [
        Action("create the table of saved column definitions", SAVED_COLUMNS_DDL, takes_lock=False),
        Action(
            f"check {table}.{column} is not an identity column (its sequence would be lost)",
            f"""DO $guard$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({reg}) AND attname = {col}
             AND attidentity <> '') THEN
    RAISE EXCEPTION USING MESSAGE = {literal(refusal)};
  END IF;
END $guard$""",
            takes_lock=False,
        ),
        Action(
            f"save the definition of {table}.{column} (to re-add it exactly on undo)",
            f"""INSERT INTO {SAVED_COLUMNS} (migration, table_schema, table_name, column_name,
    type_sql, collation_sql, not_null, default_sql, generated, comment, dependents)
SELECT {literal(migration)}, {literal(table.schema)}, {literal(table.name)}, a.attname,
    format_type(a.atttypid, a.atttypmod), {collation}, a.attnotnull,
    pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '', col_description(a.attrelid, a.attnum),
    {dependents}
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass({reg}) AND a.attname = {col} AND a.attnum > 0 AND NOT a.attisdropped
ON CONFLICT DO NOTHING""",
            takes_lock=False,
        ),
    ]


def forget_action(migration: str, table: TableName, column: str) -> Action:
    """Undo of save: forget the definition, unless the column is still dropped (then it is the
    only record of what to put back)."""
    return Action(
        f"forget the saved definition of {table}.{column}",
        f"DELETE FROM {SAVED_COLUMNS} WHERE {_where(migration, table, column)} AND NOT dropped",
        takes_lock=False,
        only_if=f"SELECT to_regclass({literal(SAVED_COLUMNS)}) IS NOT NULL",
    )


def mark_dropped_sql(migration: str, table: TableName, column: str, dropped: bool) -> str:
    return (f"UPDATE {SAVED_COLUMNS} SET dropped = {'true' if dropped else 'false'} "
            f"WHERE {_where(migration, table, column)}")


def require_saved_sql(migration: str, table: TableName, column: str) -> str:
    """A statement that fails unless the definition is saved: put before a DROP COLUMN in the same
    transaction, so a column is never dropped without what its undo needs (say the column only got
    its name from a rename earlier in the same cutover, after start saved definitions)."""
    message = (f"no saved definition of {table}.{column}, so dropping it could not be undone; "
               "was it renamed or added by this migration? drop it in a later migration")
    return f"""DO $require$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM {SAVED_COLUMNS} WHERE {_where(migration, table, column)}) THEN
    RAISE EXCEPTION USING MESSAGE = {literal(message)};
  END IF;
END $require$"""


def read_dependents(conn: psycopg.Connection, table: TableName, column: str) -> tuple[Dependent, ...]:
    """The indexes and constraints dropping table.column would take with it, as the catalog has
    them now (what save_actions records)."""
    row = conn.execute(
        f"""SELECT {_dependents_sql(table)} FROM pg_attribute a
            WHERE a.attrelid = to_regclass({table.regclass_literal}) AND a.attname = {literal(column)}
              AND a.attnum > 0 AND NOT a.attisdropped""").fetchone()
    return tuple(Dependent(d["kind"], d["name"], d["ddl"]) for d in row[0]) if row else ()


def is_dropped_sql(migration: str, table: TableName, column: str) -> str:
    return f"SELECT EXISTS (SELECT 1 FROM {SAVED_COLUMNS} WHERE {_where(migration, table, column)} AND dropped)"


def read_saved_columns(conn: psycopg.Connection, migration: str) -> dict[tuple[TableName, str], SavedColumn]:
    """Every saved definition of `migration`, for the engine's OpContext."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (SAVED_COLUMNS,)).fetchone()[0]:
        return {}
    rows = conn.execute(
        f"""SELECT table_schema, table_name, column_name, type_sql, collation_sql, not_null,
                   default_sql, generated, comment, dependents, dropped
            FROM {SAVED_COLUMNS} WHERE migration = %s""",
        (migration,),
    ).fetchall()
    saved = {}
    for schema, name, column, typ, coll, not_null, default, generated, comment, deps, dropped in rows:
        table = TableName(schema, name)
        saved[(table, column)] = SavedColumn(
            table, column, typ, coll, not_null, default, generated, comment,
            tuple(Dependent(d["kind"], d["name"], d["ddl"]) for d in deps), dropped,
        )
    return saved
