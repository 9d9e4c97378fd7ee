"""Catalog questions as SQL text, for `Action.only_if` and for parity checks.

Each function returns a query yielding one boolean (or, for `check_count`, one integer). They are
built as text, not run, so `plan` still needs no database; the runner asks them just before the
action they guard.  Names are always passed as literals and compared with the catalog, never
spliced into SQL as identifiers.
"""

from __future__ import annotations

from ...identifiers import TableName, literal
from ..base import column_exists_sql, constraint_exists_sql

__all__ = [
    "all_of", "column_exists_sql", "constraint_exists_sql", "constraint_validated_sql",
    "index_exists_sql", "index_valid_sql", "is_partitioned_sql", "negate", "table_exists_sql",
]


def negate(query: str) -> str:
    return f"SELECT NOT ({query})"


def all_of(*queries: str) -> str:
    return "SELECT " + " AND ".join(f"({q})" for q in queries)


def table_exists_sql(table: TableName) -> str:
    return f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL"


def is_partitioned_sql(table: TableName) -> str:
    """CONCURRENTLY and NOT VALID foreign keys are refused on partitioned tables (PostgreSQL 15)."""
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass("
        f"{table.regclass_literal}) AND relkind = 'p')"
    )


def _index(schema: str, name: str, extra: str = "") -> str:
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = {literal(schema)} AND c.relname = {literal(name)}{extra})"
    )


def index_exists_sql(schema: str, name: str) -> str:
    return _index(schema, name)


def index_valid_sql(schema: str, name: str, valid: bool = True) -> str:
    """An index of that name exists and is (in)valid: a failed CONCURRENTLY build leaves an
    INVALID index behind, which IF NOT EXISTS would otherwise mistake for a finished one."""
    return _index(schema, name, f" AND {'' if valid else 'NOT '}i.indisvalid")


def constraint_validated_sql(table: TableName, name: str, validated: bool = True) -> str:
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass("
        f"{table.regclass_literal}) AND conname = {literal(name)} AND "
        f"{'' if validated else 'NOT '}convalidated)"
    )


def check_count(query: str) -> str:
    """A parity check's count (0 passes) from a boolean query that is true when all is well."""
    return f"SELECT CASE WHEN ({query}) THEN 0 ELSE 1 END"
