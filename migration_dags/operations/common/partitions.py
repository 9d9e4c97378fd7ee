"""A partitioned table's partitions, and an index built on them without blocking writes.

PostgreSQL 15 builds no index CONCURRENTLY on a partitioned table, and a plain CREATE INDEX on
one blocks writes to every partition while it builds. It also *attaches* any equivalent index a
partition already has instead of building one, so a later DROP INDEX of the new index would drop
that pre-existing index with it (seen on pagila's payment partitions and their
idx_fk_..._customer_id indexes). The way round, as PostgreSQL's documentation gives it:

    CREATE INDEX name ON ONLY parent ...           the parent's index, invalid, empty: a brief lock
    CREATE INDEX CONCURRENTLY child ON partition   for each leaf partition: writes go on
    ALTER INDEX name ATTACH PARTITION child        once every partition's index is attached, the
                                                   parent's index becomes valid by itself

A sub-partitioned partition gets an `ON ONLY` index of its own, attached to its parent's and
receiving its own partitions' indexes. Every child index is ours (`<index>__<partition>`), never a
pre-existing one, so `DROP INDEX name` (which drops the attached children with it) drops only what
the migration built.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ...actions import Action
from ...identifiers import TableName, literal, quote, short_name
from ..base import constraint_exists_sql
from .catalog_sql import all_of, index_valid_sql, negate


@dataclass(frozen=True)
class Partition:
    table: TableName
    parent: TableName
    partitioned: bool  # itself partitioned (sub-partitions below it): gets an ON ONLY index


def read_partitions(conn: psycopg.Connection, tables: set[TableName]) -> dict[TableName, list[Partition]]:
    """For each of `tables` that is partitioned: its partitions at every level, parents before
    their partitions (a partitioned table with no partition yet maps to [])."""
    found: dict[TableName, list[Partition]] = {}
    for table in sorted(tables, key=str):
        row = conn.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)",
                           (table.sql,)).fetchone()
        if not (row and row[0]):
            continue
        rows = conn.execute(
            """WITH RECURSIVE tree AS (
                   SELECT inhrelid, inhparent, 1 AS depth FROM pg_inherits
                   WHERE inhparent = to_regclass(%s)
                   UNION ALL
                   SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_inherits i
                   JOIN tree t ON i.inhparent = t.inhrelid)
               SELECT cn.nspname, c.relname, pn.nspname, p.relname, c.relkind = 'p'
               FROM tree JOIN pg_class c ON c.oid = tree.inhrelid
               JOIN pg_namespace cn ON cn.oid = c.relnamespace
               JOIN pg_class p ON p.oid = tree.inhparent
               JOIN pg_namespace pn ON pn.oid = p.relnamespace
               ORDER BY tree.depth, cn.nspname, c.relname""",
            (table.sql,),
        ).fetchall()
        found[table] = [Partition(TableName(s, n), TableName(ps, pn), bool(sub))
                        for s, n, ps, pn, sub in rows]
    return found


def child_index_name(index: str, partition: TableName) -> str:
    return short_name(index, partition.name)


def _qualified(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def _not_attached(child: str) -> str:
    return f"SELECT NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass({literal(child)}))"


def partitioned_index_actions(create: str, index: str, table: TableName,
                              partitions: list[Partition], definition: str) -> list[Action]:
    """The actions that build `index` on partitioned `table` without a long lock. `create` is
    `CREATE INDEX` or `CREATE UNIQUE INDEX`; `definition` what follows `ON <table>`."""
    parent_index = {table: _qualified(table.schema, index)}
    actions = [Action(
        f"create index {index} on only partitioned table {table} (empty and invalid until every "
        "partition's index is attached; a brief lock)",
        f"{create} IF NOT EXISTS {quote(index)} ON ONLY {table.sql} {definition}",
    )]
    for p in partitions:
        child = child_index_name(index, p.table)
        qualified = _qualified(p.table.schema, child)
        parent_index[p.table] = qualified
        if p.partitioned:
            actions.append(Action(
                f"create index {child} on only sub-partitioned {p.table}",
                f"{create} IF NOT EXISTS {quote(child)} ON ONLY {p.table.sql} {definition}"))
        else:
            invalid = index_valid_sql(p.table.schema, child, valid=False)
            actions += [
                Action(f"drop invalid index {child} left by a failed concurrent build",
                       f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}",
                       transactional=False, takes_lock=False,
                       only_if=all_of(invalid, _not_attached(qualified))),
                Action(f"create index {child} on partition {p.table} concurrently (writes go on)",
                       f"{create} CONCURRENTLY IF NOT EXISTS {quote(child)} ON {p.table.sql} {definition}",
                       transactional=False, takes_lock=False),
            ]
        actions.append(Action(
            f"attach {child} to {parent_index[p.parent]}",
            f"ALTER INDEX {parent_index[p.parent]} ATTACH PARTITION {qualified}",
            only_if=_not_attached(qualified)))
    return actions


def partitioned_index_drops(index: str, table: TableName, partitions: list[Partition]) -> list[Action]:
    """Drop the parent's index (and with it every child attached to it), then any child a
    failed build left unattached."""
    actions = [Action(f"drop index {index} of partitioned table {table} and its partitions' indexes",
                      f"DROP INDEX IF EXISTS {_qualified(table.schema, index)}")]
    for p in reversed(partitions):
        qualified = _qualified(p.table.schema, child_index_name(index, p.table))
        actions.append(Action(
            f"drop unattached index {child_index_name(index, p.table)} of "
            f"{'sub-partitioned ' if p.partitioned else ''}{p.table}",
            f"DROP INDEX {'' if p.partitioned else 'CONCURRENTLY '}IF EXISTS {qualified}",
            transactional=p.partitioned, takes_lock=p.partitioned))
    return actions


# -- foreign keys -------------------------------------------------------------------------------
# PostgreSQL 15 refuses `NOT VALID` on a partitioned table, and a plain ADD FOREIGN KEY there
# scans every partition while blocking writes. But when each partition already has an
# equivalent, validated foreign key, the parent's ADD attaches them without a scan (measured: 5 ms
# over 200,000 rows, no sequential scan). So: each leaf gets the key NOT VALID, then VALIDATE
# (writes go on), then the parent's ADD. A partition that already had an equivalent key of its own
# (pagila's payment_p2022_01_customer_id_fkey) gets none of ours, and PostgreSQL attaches *that*
# one; dropping the parent's key drops it too, so the undo re-adds each one it took over, under its
# own name and definition.
_DELETE_RULES = {None: "a", "NO ACTION": "a", "RESTRICT": "r", "CASCADE": "c", "SET NULL": "n",
                 "SET DEFAULT": "d"}


def _names_array(columns: list[str]) -> str:
    return "ARRAY[" + ", ".join(literal(c) for c in columns) + "]::name[]"


def _equivalent_key_sql(partition: TableName, columns: list[str], ref: TableName,
                        ref_columns: list[str], on_delete: str | None) -> str:
    """The partition has a validated foreign key the parent's would attach (the fields
    PostgreSQL compares: columns, referenced table and columns, rules, deferrability)."""
    def names(rel: str, keys: str) -> str:
        return (f"(SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest({keys}) WITH ORDINALITY "
                f"AS k(n, ord) JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.n)")
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.contype = 'f' AND c.convalidated "
        f"AND c.conrelid = to_regclass({partition.regclass_literal}) "
        f"AND c.confrelid = to_regclass({ref.regclass_literal}) "
        f"AND {names('c.conrelid', 'c.conkey')} = {_names_array(columns)} "
        f"AND {names('c.confrelid', 'c.confkey')} = {_names_array(ref_columns)} "
        f"AND c.confdeltype = {literal(_DELETE_RULES[on_delete])} AND c.confupdtype = 'a' "
        "AND c.confmatchtype = 's' AND NOT c.condeferrable)"
    )


def _unattached_constraint_sql(table: TableName, name: str) -> str:
    """constraint_exists_sql, and not the partition's part of a parent's constraint."""
    return (f"SELECT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conrelid = "
            f"to_regclass({table.regclass_literal}) AND c.conname = {literal(name)} "
            "AND c.conparentid = 0)")


def partitioned_foreign_key_actions(name: str, table: TableName, partitions: list[Partition],
                                    definition: str, columns: list[str], ref: TableName,
                                    ref_columns: list[str], on_delete: str | None) -> list[Action]:
    actions: list[Action] = []
    for p in partitions:
        if p.partitioned:  # gets the key from the parent's ADD, attaching its leaves' keys
            continue
        no_equivalent = negate(_equivalent_key_sql(p.table, columns, ref, ref_columns, on_delete))
        missing = all_of(negate(constraint_exists_sql(p.table, name)), no_equivalent)
        actions += [
            Action(f"add foreign key {name} on partition {p.table} (NOT VALID: no scan)",
                   f"ALTER TABLE {p.table.sql} ADD CONSTRAINT {quote(name)} {definition} NOT VALID",
                   only_if=missing),
            Action(f"validate foreign key {name} on partition {p.table} (scans without blocking "
                   "writes)",
                   f"ALTER TABLE {p.table.sql} VALIDATE CONSTRAINT {quote(name)}",
                   only_if=all_of(constraint_exists_sql(p.table, name),
                                  no_equivalent)),
        ]
    actions.append(Action(
        f"add foreign key {name} on partitioned table {table} (attaches each partition's "
        "validated key: no scan)",
        f"ALTER TABLE {table.sql} ADD CONSTRAINT {quote(name)} {definition}",
        only_if=negate(constraint_exists_sql(table, name))))
    return actions


def partitioned_foreign_key_drops(name: str, table: TableName, partitions: list[Partition],
                                  ref: TableName) -> list[Action]:
    """Drop the parent's key, re-adding (NOT VALID, in the same transaction) every partition key
    it had taken over under another name; then validate those; then drop our leaf keys a failed
    start left unattached."""
    parent = f"(SELECT oid FROM pg_constraint WHERE conrelid = to_regclass({table.regclass_literal}) AND conname = {literal(name)})"
    # leaves first: a sub-partitioned partition's own key (no NOT VALID there) then attaches them
    taken_over = f"""WITH RECURSIVE attached AS (
    SELECT oid, conrelid, conname, 1 AS depth FROM pg_constraint WHERE conparentid = {parent}
    UNION ALL SELECT c.oid, c.conrelid, c.conname, a.depth + 1 FROM pg_constraint c
    JOIN attached a ON c.conparentid = a.oid)
  SELECT a.conrelid::regclass AS rel, a.conname, pg_get_constraintdef(a.oid) AS def,
         CASE WHEN r.relkind = 'p' THEN '' ELSE ' NOT VALID' END AS how
  FROM attached a JOIN pg_class r ON r.oid = a.conrelid
  WHERE a.conname <> {literal(name)} ORDER BY a.depth DESC"""
    drop = f"""DO $mdg$
DECLARE
  kept record;
  readd text[] := '{{}}';
BEGIN
  FOR kept IN {taken_over} LOOP
    readd := readd || format('ALTER TABLE %s ADD CONSTRAINT %I %s%s', kept.rel, kept.conname, kept.def, kept.how);
  END LOOP;
  ALTER TABLE {table.sql} DROP CONSTRAINT IF EXISTS {quote(name)};
  FOR i IN 1 .. coalesce(array_length(readd, 1), 0) LOOP
    EXECUTE readd[i];
  END LOOP;
END
$mdg$"""
    actions = [Action(
        f"drop foreign key {name} of partitioned table {table}, keeping the partitions' own keys "
        "it had attached", drop,
        only_if=f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL")]
    for p in partitions:
        if p.partitioned:
            continue
        others = (f"SELECT c.conname FROM pg_constraint c WHERE c.conrelid = "
                  f"to_regclass({p.table.regclass_literal}) AND c.contype = 'f' AND NOT c.convalidated "
                  f"AND c.confrelid = to_regclass({ref.regclass_literal}) AND c.conname <> {literal(name)}")
        actions += [
            Action(f"validate the keys of partition {p.table} put back NOT VALID (writes go on)",
                   f"DO $mdg$ DECLARE k record; BEGIN FOR k IN {others} LOOP "
                   f"EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT %I', "
                   f"{literal(p.table.sql)}, k.conname); END LOOP; END $mdg$",
                   only_if=f"SELECT EXISTS ({others})"),
            Action(f"drop foreign key {name} of partition {p.table} (left unattached)",
                   f"ALTER TABLE {p.table.sql} DROP CONSTRAINT IF EXISTS {quote(name)}",
                   only_if=_unattached_constraint_sql(p.table, name)),
        ]
    return actions
