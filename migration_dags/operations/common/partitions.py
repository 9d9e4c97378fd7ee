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
from .catalog_sql import all_of, index_valid_sql


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
