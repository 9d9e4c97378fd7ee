"""A unique index over values a migration computes: proven free of duplicates by the validation
step (naming the colliding keys), then built CONCURRENTLY at cutover.

Built at start, a unique index would turn a duplicate into a failed backfill batch (or a failed
application write) before anything had named the rows; built at cutover after the check, a
duplicate is a validation failure that lists each colliding value with the keys of its rows, and
the migration rolls back before anything is swapped. A duplicate written between validation and
cutover fails the concurrent build, and the cutover undoes itself (dropping the invalid index).
NULLs never collide (PostgreSQL's default NULLS DISTINCT), so the check skips them too.
"""

from __future__ import annotations

from ...actions import Action
from ...identifiers import TableName, literal, quote
from ..base import ParityCheck
from .catalog_sql import all_of, index_valid_sql


def duplicates_check(table: TableName, column: str, key: list[str], name: str,
                     description: str) -> ParityCheck:
    """Rows whose `column` value another row shares: counted, and shown as
    `email=a@b.c: id=5, id=77` (the value, then the keys of the rows sharing it)."""
    col = quote(column)
    shared = (f"SELECT {col} AS value FROM {table.sql} WHERE {col} IS NOT NULL "
              f"GROUP BY {col} HAVING count(*) > 1")
    shown_key = " || ', ' || ".join(
        f"{literal(k + '=')} || coalesce(t.{quote(k)}::text, 'NULL')" for k in key) or "t.ctid::text"
    return ParityCheck(
        name, description,
        f"SELECT count(*) FROM {table.sql} AS t WHERE t.{col} IN ({shared})",
        f"SELECT {literal(column + '=')} || t.{col}::text || ': ' || "
        f"string_agg({shown_key}, '; ' ORDER BY {', '.join(f't.{quote(k)}' for k in key) or 't.ctid'}) "
        f"FROM {table.sql} AS t WHERE t.{col} IN ({shared}) GROUP BY t.{col} "
        f"ORDER BY t.{col} LIMIT 20",
    )


def build_unique_index(table: TableName, index: str, column: str, only_if: str) -> list[Action]:
    """CREATE UNIQUE INDEX CONCURRENTLY (dropping an invalid one a failed build left first)."""
    qualified = f"{quote(table.schema)}.{quote(index)}"
    return [
        Action(f"drop invalid index {index} left by a failed concurrent build",
               f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}", transactional=False,
               takes_lock=False,
               only_if=all_of(only_if, index_valid_sql(table.schema, index, valid=False))),
        Action(f"create unique index {index} on {table} ({column}) concurrently (writes go on)",
               f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {quote(index)} ON {table.sql} "
               f"({quote(column)})", transactional=False, takes_lock=False, only_if=only_if),
    ]


def drop_unique_index(table: TableName, index: str) -> Action:
    return Action(f"drop index {index} concurrently",
                  f"DROP INDEX CONCURRENTLY IF EXISTS {quote(table.schema)}.{quote(index)}",
                  transactional=False, takes_lock=False)
