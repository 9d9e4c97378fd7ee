"""The indexes and CHECK constraints of a column alter_column swaps, rebuilt on the new column.

Dropping the old column at cutover drops its indexes and constraints with it. So, for a column
with plain (non-unique) indexes and CHECK constraints:

    start      each index is built on the shadow column, CONCURRENTLY (writes go on), under a
               name of its own (mdg_new__<index>); the backfill keeps it up to date
    validation a parity check per CHECK: no row's new value breaks it
    complete   before the swap, each CHECK is added to the shadow column NOT VALID, then
               VALIDATEd (two short steps, as NOT NULL is); the swap's transaction, once the old
               column and its indexes and checks are gone, gives them their names back
    uncomplete the same on the re-added original column (mdg_old__<name>), then the swap back
               exchanges the names; rollback drops the shadow column with what was built on it

Each definition is the catalog's (recorded at start with the column, saved_columns.py) with the
column reference replaced in the parsed tree (spec/sql_rewrite.py). Refused before any change:
unique indexes (built over the shadow column during the expand phase, duplicates that `up`
makes would fail the application's writes; drop the index with raw_sql and re-create it after),
unique, primary key, exclusion and foreign key constraints, and indexes or checks of a
partitioned table (PostgreSQL builds neither concurrently there). Comments on these indexes and
constraints are not carried over.
"""

from __future__ import annotations

from ...actions import Action
from ...identifiers import TableName, literal, quote, short_name
from ...spec.sql_rewrite import (
    check_condition,
    constraint_kind,
    index_is_unique,
    rename_column_in_check,
    rename_column_in_index,
)
from ...state.saved_columns import Dependent
from ..base import ParityCheck, constraint_exists_sql, first_keys_sql
from .catalog_sql import all_of, constraint_validated_sql, index_valid_sql, negate

NEW, OLD = "mdg_new", "mdg_old"


def unsupported(dependents: tuple[Dependent, ...], partitioned: bool) -> list[str]:
    """What alter_column cannot rebuild on the new column, as "index x" / "unique constraint y"."""
    refused = []
    for d in dependents:
        if d.kind == "index":
            if partitioned:
                refused.append(f"index {d.name} of a partitioned table")
            elif index_is_unique(d.ddl):
                refused.append(f"unique index {d.name}")
        else:
            kind = constraint_kind(d.ddl)
            if kind != "check":
                refused.append(f"{kind} constraint {d.name}")
            elif partitioned:
                refused.append(f"check constraint {d.name} of a partitioned table")
    return refused


def _name(prefix: str, d: Dependent) -> str:
    return short_name(prefix, d.name)


def _indexes(dependents: tuple[Dependent, ...]) -> list[Dependent]:
    return [d for d in dependents if d.kind == "index"]


def _checks(dependents: tuple[Dependent, ...]) -> list[Dependent]:
    return [d for d in dependents if d.kind == "constraint"]


def build_index_actions(table: TableName, column: str, on: str, prefix: str,
                        dependents: tuple[Dependent, ...]) -> list[Action]:
    """Each index of `column` built again on column `on`, CONCURRENTLY, named <prefix>__<name>; an
    invalid leftover of a failed build is dropped first (IF NOT EXISTS would take it for done)."""
    actions = []
    for d in _indexes(dependents):
        name = _name(prefix, d)
        qualified = f"{quote(table.schema)}.{quote(name)}"
        actions += [
            Action(f"drop invalid index {name} left by a failed concurrent build",
                   f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}", transactional=False,
                   takes_lock=False, only_if=index_valid_sql(table.schema, name, valid=False)),
            Action(f"build index {d.name} again on {table}.{on} concurrently, as {name} "
                   "(writes go on)",
                   rename_column_in_index(d.ddl, column, on, name), transactional=False,
                   takes_lock=False),
        ]
    return actions


def add_check_actions(table: TableName, column: str, on: str, prefix: str,
                      dependents: tuple[Dependent, ...], guard: str) -> list[Action]:
    """Each CHECK of `column` added again over column `on` NOT VALID, then validated (each its own
    short step); `guard` says whether column `on` is there."""
    actions = []
    for d in _checks(dependents):
        name = _name(prefix, d)
        actions += [
            Action(f"add check {d.name} again over {table}.{on} as {name} (NOT VALID)",
                   rename_column_in_check(d.ddl, column, on, name),
                   only_if=all_of(guard, negate(constraint_exists_sql(table, name)))),
            Action(f"validate {name} (reads the table; writes go on)",
                   f"ALTER TABLE {table.sql} VALIDATE CONSTRAINT {quote(name)}",
                   only_if=constraint_validated_sql(table, name, validated=False)),
        ]
    return actions


def drop_checks_sql(table: TableName, prefix: str, dependents: tuple[Dependent, ...]) -> str | None:
    """Drop the checks add_check_actions added (undo of a cutover that failed before its swap)."""
    drops = [f"DROP CONSTRAINT IF EXISTS {quote(_name(prefix, d))}" for d in _checks(dependents)]
    return f"ALTER TABLE {table.sql} {', '.join(drops)}" if drops else None


def take_names_sql(table: TableName, prefix: str, dependents: tuple[Dependent, ...]) -> str:
    """In the swap, once the old column is gone: <prefix>__<name> becomes <name>."""
    return "".join(_rename(table, d, _name(prefix, d), d.name) for d in dependents)


def exchange_names_sql(table: TableName, dependents: tuple[Dependent, ...]) -> str:
    """In the swap back: the new column's <name> becomes mdg_new__<name>, the re-added
    original's mdg_old__<name> becomes <name>."""
    return "".join(_rename(table, d, d.name, _name(NEW, d)) + _rename(table, d, _name(OLD, d), d.name)
                   for d in dependents)


def _rename(table: TableName, d: Dependent, old: str, new: str) -> str:
    if d.kind == "index":
        return f"ALTER INDEX {quote(table.schema)}.{quote(old)} RENAME TO {quote(new)};\n"
    return f"ALTER TABLE {table.sql} RENAME CONSTRAINT {quote(old)} TO {quote(new)};\n"


def lost_on_drop_guard_sql(table: TableName, column: str, dependents: tuple[Dependent, ...]) -> str:
    """A statement that fails unless every index and constraint dropping the column would take
    is one rebuilt on the new column: one created after start would be lost without a trace."""
    reg, known = table.regclass_literal, ", ".join(literal(d.name) for d in dependents) or "NULL"
    return f"""DO $kept$
DECLARE lost text;
BEGIN
  SELECT string_agg(coalesce(c.conname, d.objid::regclass::text), ', ') INTO lost
  FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  LEFT JOIN pg_constraint c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
  LEFT JOIN pg_class ic ON d.classid = 'pg_class'::regclass AND ic.oid = d.objid
  WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass({reg})
    AND a.attname = {literal(column)} AND d.deptype IN ('a', 'n')
    AND (c.oid IS NOT NULL OR ic.relkind IN ('i', 'I'))
    AND coalesce(c.conname, ic.relname) NOT IN ({known})
    AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ic.oid);
  IF lost IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = format('alter_column: %s.%s has %s, made after the migration '
      'started, which the swap would drop with the old column; drop it (raw_sql) and run again',
      {literal(str(table))}, {literal(column)}, lost);
  END IF;
END $kept$;
"""


def check_parity(table: TableName, column: str, shadow: str, dependents: tuple[Dependent, ...],
                 sample: str) -> list[ParityCheck]:
    """Per CHECK: the rows whose new value breaks it (the cutover's VALIDATE would fail)."""
    checks = []
    for d in _checks(dependents):
        broken = f"({check_condition(d.ddl, column, shadow)}) IS FALSE"
        checks.append(ParityCheck(
            f"{table.name}.{column}.check_{d.name}",
            f"every new value of {column} satisfies check {d.name}",
            f"SELECT count(*) FROM {table.sql} WHERE {broken}",
            first_keys_sql(sample, f"FROM {table.sql}", broken, sample),
        ))
    return checks


def refuse_what_drop_would_lose(table: TableName, column: str, only_if: str) -> Action:
    """start's first action: fail, before any change, when dropping the old column at cutover
    would lose something not rebuilt on the new one (identity, a generated expression, a unique
    index, a unique, exclusion or foreign key constraint, anything of a partitioned table):
    validate refuses these by name already; this catches what was made since."""
    reg, col = table.regclass_literal, literal(column)
    return Action(
        f"refuse {table}.{column} if dropping it would lose indexes or constraints",
        f"""DO $guard$
DECLARE
  lost text;
BEGIN
  SELECT string_agg(what, ', ' ORDER BY what) INTO lost FROM (
    SELECT 'identity' AS what FROM pg_attribute WHERE attrelid = to_regclass({reg})
      AND attname = {col} AND attidentity <> ''
    UNION ALL
    SELECT 'generated expression' FROM pg_attribute WHERE attrelid = to_regclass({reg})
      AND attname = {col} AND attgenerated <> ''
    UNION ALL
    SELECT CASE WHEN d.classid = 'pg_class'::regclass THEN 'index ' || d.objid::regclass::text
            ELSE 'constraint ' || (SELECT conname FROM pg_constraint WHERE oid = d.objid) END
    FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = to_regclass({reg})
      AND a.attname = {col} AND d.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass)
      AND d.deptype IN ('a', 'n')
      AND (d.classid <> 'pg_class'::regclass
       OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = d.objid))
      -- rebuilt on the new column (common/shadow_indexes.py): plain indexes and CHECKs of a
      -- table that is not partitioned
      AND NOT (EXISTS (SELECT 1 FROM pg_class t WHERE t.oid = d.refobjid AND t.relkind <> 'p')
           AND (EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = d.objid
                          AND NOT i.indisunique AND d.classid = 'pg_class'::regclass
                          AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                          WHERE k.conindid = i.indexrelid))
                OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = d.objid
                           AND d.classid = 'pg_constraint'::regclass AND k.contype = 'c')))
  ) s;
  IF lost IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = format(
      'alter_column: %s.%s has %s, which the cutover would drop with the old column; '
      'drop them first (raw_sql) and re-create them after the cutover',
      {literal(str(table))}, {col}, lost);
  END IF;
END $guard$""",
        takes_lock=False,
        only_if=only_if,
    )
