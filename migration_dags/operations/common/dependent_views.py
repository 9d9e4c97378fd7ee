"""Views over a column that alter_column carries over its swap, and what plan says about them.

alter_column's cutover replaces a column by another of the same name; PostgreSQL refuses to drop
a column a view reads. So the swap's one transaction saves every view over the column (directly
or through other views, materialized ones included), drops them, swaps the column and re-creates
them from their saved definitions, which now read the new column (state/saved_views.py). The undo
of the cutover does the same the other way and re-creates exactly what was there before.

Whether each view still works over the new type is checked before any change
(spec/rebuild_check.py): a view that would not, is named and the migration refused.

Materialized views are re-created WITH DATA inside that transaction (exact: no moment when
readers find them unpopulated, or stale): their query runs while the table is locked, for about
as long as a REFRESH takes. plan says so, with each one's size.

rename_column needs none of this: a view reads a column by its number, so it follows the rename
(its definition prints the new name) and keeps its own column names (`SELECT amount` becomes
`SELECT price AS amount`), so the view's readers see no change. drop_column cannot carry a view
that reads the dropped column: it refuses and names it, unless a raw_sql says it drops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import psycopg

from ...identifiers import TableName
from ...state import saved_views
from ...view_catalog import views_with_statements_sql

if TYPE_CHECKING:
    from ..base import Operation


@dataclass(frozen=True)
class DependentView:
    schema: str
    name: str
    kind: str          # v | m
    depth: int         # 1: reads the column itself
    statements: tuple[str, ...]  # re-create it exactly, under search_path = ''
    bytes: int         # a materialized view's size on disk

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def what(self) -> str:
        return "materialized view" if self.kind == "m" else "view"


def dependent_views(conn: psycopg.Connection, table: TableName, column: str) -> list[DependentView]:
    """Every view over table.column, in creation order (view_catalog.dependent_views_sql decides
    which; views in the tool's own schemas are filtered there)."""
    with conn.transaction():
        conn.execute("SET LOCAL search_path = ''")  # names print qualified
        rows = conn.execute(views_with_statements_sql(table, column)).fetchall()
    return [DependentView(s, n, k, d, tuple(st), b) for s, n, k, d, st, _owner, b in rows]


# -- the swap's pieces ---------------------------------------------------------------------------
def before_swap_sql(migration: str, table: TableName, column: str) -> str:
    """In the swap's transaction, before the column goes: save the views over it, drop them."""
    return (f"{saved_views.save_sql(migration, table, column)};\n"
            f"{saved_views.drop_sql(migration, table, column)}")


def after_swap_sql(migration: str, table: TableName, column: str) -> str:
    """In the swap's transaction, once the new column has the name: re-create the saved views."""
    return saved_views.recreate_sql(migration, table, column)


def before_unswap_sql(migration: str, table: TableName, column: str) -> str:
    """In the undo's swap: drop the views the cutover re-created (they read the new column)."""
    return saved_views.drop_sql(migration, table, column)


def after_unswap_sql(migration: str, table: TableName, column: str) -> str:
    """In the undo's swap, once the original column has its name back: the views as they were."""
    return (f"{saved_views.recreate_sql(migration, table, column)};\n"
            f"{saved_views.forget_sql(migration, table, column)}")


# -- plan ----------------------------------------------------------------------------------------
def plan_notes(conn: psycopg.Connection, operations: Iterable["Operation"]) -> list[str]:
    """What plan says before up about the views each operation carries over its cutover."""
    notes = []
    for op in operations:
        carried = op.carried_column()
        if carried is None:
            continue
        table, column = carried
        views = dependent_views(conn, table, column)
        if not views:
            continue
        listed = ", ".join(f"{v.what} {v}" for v in views)
        notes.append(f"{table}.{column}: the cutover drops and re-creates, in its one locked "
                     f"transaction, {listed} (definitions, options, owners, grants, comments and "
                     "indexes kept; down re-creates them as they are now)")
        for view in views:
            if view.kind == "m":
                notes.append(
                    f"materialized view {view} ({_size(view.bytes)}) is re-created WITH DATA "
                    f"inside the cutover's transaction: {table} stays locked while its query "
                    "runs, about as long as a REFRESH MATERIALIZED VIEW of it takes")
    return notes


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n} TB"
