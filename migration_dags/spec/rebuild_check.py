"""Before any change: does what alter_column rebuilds over the new type still work there?

alter_column re-creates, over its new column, the views that read the old one (transitively,
materialized ones too) and the column's indexes and CHECK constraints. One that does not
type-check over the new type (`lower(price)` once price is numeric, a view comparing it with
text) would fail the cutover; it is refused at validate (and so at `plan`) instead, naming it.

How, without touching the user's objects or locking the table beyond a read: inside a transaction
that is always rolled back, a temporary table stands in for the table as the schema model holds
it after the operation (the column with its new type), and each definition is created again over
it (spec/sql_rewrite.py swaps the relation in the parsed tree): each view as a temporary view
reading the stand-in (and the stand-ins of the views it reads), each index and CHECK on the
stand-in. A definition pglast cannot print again is left to the cutover, whose transaction
undoes itself if it fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from ..errors import SchemaValidationError
from ..identifiers import TableName, quote
from ..schema_model import SchemaModel
from .sql_rewrite import on_relation, view_query

if TYPE_CHECKING:
    from ..operations.base import Operation

STATEMENT_TIMEOUT = "5s"
STAND_IN = ("pg_temp", "mdg_rebuild_check")


def check_rebuilds(conn: psycopg.Connection, op: "Operation", model: SchemaModel) -> None:
    """For an operation that carries a column over (Operation.carried_column), after it applied
    to `model`: refuse what would not work over the column's new type. Changes nothing."""
    from ..operations.common.dependent_views import dependent_views
    from ..operations.common.shadow_indexes import unsupported
    from ..state.saved_columns import read_dependents

    carried = op.carried_column()
    if carried is None or model.table(carried[0]) is None:
        return
    table, column = carried
    dependents = read_dependents(conn, table, column)
    partitioned = conn.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)",
                               (table.sql,)).fetchone()[0]
    refused = unsupported(dependents, partitioned)
    if refused:
        raise SchemaValidationError(
            op.where, f"{table}.{column} has {', '.join(refused)}, which alter_column cannot "
            "rebuild on the new column; drop it first (raw_sql) and re-create it after the cutover")
    views = dependent_views(conn, table, column)
    if not views and not dependents:
        return
    new_type = model.tables[table].columns[column].type_sql
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        columns = ", ".join(f"{quote(n)} {c.type_sql}" for n, c in model.tables[table].columns.items())
        conn.execute(f"CREATE TEMPORARY TABLE {quote(STAND_IN[1])} ({columns})")
        for d in dependents:
            _try(conn, op, f"{'index' if d.kind == 'index' else 'check constraint'} {d.name}",
                 table, column, new_type, lambda d=d: on_relation(d.ddl, STAND_IN))
        conn.execute("SET LOCAL search_path = ''")  # the views' definitions were read so
        relations = {(table.schema, table.name): STAND_IN}
        for n, view in enumerate(views):
            if str(view) in model.dropped:  # a raw_sql before this operation drops it
                continue
            stand_in = ("pg_temp", f"mdg_rebuild_view_{n}")
            if _try(conn, op, f"{view.what} {view}", table, column, new_type,
                    lambda view=view, s=stand_in: f"CREATE TEMPORARY VIEW {quote(s[1])} AS "
                    + view_query(view.statements[0], relations)):
                relations[(view.schema, view.name)] = stand_in


def _try(conn: psycopg.Connection, op: "Operation", what: str, table: TableName, column: str,
         new_type: str, statement) -> bool:
    """Run statement() in a savepoint; False when pglast could not print it (the cutover will
    tell), SchemaValidationError naming `what` when PostgreSQL refuses it."""
    try:
        sql = statement()
    except Exception:  # noqa: BLE001
        return False
    try:
        with conn.transaction():  # a savepoint: the next one starts clean
            conn.execute(sql)
    except psycopg.Error as exc:
        message = " ".join((exc.diag.message_primary or str(exc).splitlines()[0]).split())
        raise SchemaValidationError(
            op.where, f"{what} does not work over {table}.{column} as {new_type} ({message}); "
            "change or drop it first, in this migration (raw_sql, declaring what it drops: "
            "drops: [...]), and re-create it after the cutover") from None
    return True
