"""The expressions of a migration checked against the live catalog, before anything runs.

Loading (sql_text.py) proves each expression is one expression; only the database knows whether
its columns, functions and types exist. `check_expressions` plans (EXPLAIN, never executes) a
query using each expression, inside a transaction that is always rolled back, so a wrong column
or a type error is a SchemaValidationError (exit 2) naming the field at `plan` and validate time,
before backup.

The row an expression reads is the table as the schema model holds it at that operation (columns
earlier operations add included), given as a derived table of typed NULLs named like the table:
`FROM (SELECT NULL::bigint AS "id", ...) AS "users"`. The real table is never read, and a column
the migration adds is there. (So a column is written `col` or `users.col`, not `public.users.col`.)

A query (a backfill's `insert.select`) may read tables earlier operations of the same migration
create (the roles an insert joins): in the rolled-back transaction, each table the model holds
that the database does not have yet gets an empty temporary stand-in of the model's columns,
which an unqualified name finds first (pg_temp leads the search path).

Functions: an unqualified name the database also has outside pg_catalog is refused unless the
migration allows it (functions.py): the search path could pick the user's function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from ..errors import SchemaValidationError
from ..identifiers import quote
from ..schema_model import SchemaModel
from .functions import allowed
from .sql_text import FunctionName, SqlProblem, expression_tree, function_calls, query_tree, short

if TYPE_CHECKING:
    from ..operations.base import Expression, Operation

STATEMENT_TIMEOUT = "5s"


def check_expressions(
    conn: psycopg.Connection,
    op: "Operation",
    model: SchemaModel,
    allow: tuple[str, ...],
    after_apply: bool,
) -> None:
    """Check `op`'s expressions of one phase (before or after it applies to `model`)."""
    uses = [e for e in op.expressions() if e.after_apply == after_apply]
    if not uses:
        return
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        if any(use.is_query for use in uses):
            _stand_ins_for_created_tables(conn, model)
        for use in uses:
            where = f"{op.where}.{use.field}"
            _refuse_user_functions(conn, where, use, allow)
            sql = _explain_sql(use, model)
            try:
                with conn.transaction():  # a savepoint: the next check starts clean
                    conn.execute(sql)
            except psycopg.Error as exc:
                message = exc.diag.message_primary or str(exc).splitlines()[0]
                raise SchemaValidationError(
                    where, f"{short(use.sql)!r} does not work on the live database: "
                    f"{' '.join(message.split())}"
                ) from None


def _stand_ins_for_created_tables(conn: psycopg.Connection, model: SchemaModel) -> None:
    """Empty temporary tables named like the model's tables the database lacks (created by an
    earlier operation of this migration), inside the caller's rolled-back transaction."""
    made: set[str] = set()
    for name, table in model.tables.items():
        if name.name in made or conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                             (name.sql,)).fetchone()[0]:
            continue
        columns = ", ".join(f"{quote(c)} {col.type_sql}" for c, col in table.columns.items())
        conn.execute(f"CREATE TEMPORARY TABLE {quote(name.name)} ({columns}) ON COMMIT DROP")
        made.add(name.name)


def _calls(use: "Expression") -> list[FunctionName]:
    try:
        tree = query_tree(_query_text(use, "(SELECT 1)")) if use.is_query else expression_tree(use.sql)
    except SqlProblem:  # refused at load time already
        return []
    return function_calls(tree)


def _refuse_user_functions(conn: psycopg.Connection, where: str, use: "Expression",
                           allow: tuple[str, ...]) -> None:
    names = sorted({f.name for f in _calls(use) if f.schema is None and not allowed(f, allow)})
    if not names:
        return
    rows = conn.execute(
        """SELECT DISTINCT p.proname, n.nspname FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.proname = ANY(%s) AND n.nspname <> 'pg_catalog'
           ORDER BY 1, 2""",
        (names,),
    ).fetchall()
    if rows:
        name, schema = rows[0]
        raise SchemaValidationError(
            where, f"calls {name}, and the database has a function {schema}.{name} outside "
            "pg_catalog that the search path could pick; write pg_catalog." + name +
            f" for the built-in, or list {schema}.{name} in allow_functions"
        )


def _row_source(use: "Expression", model: SchemaModel) -> str:
    if use.table is None:
        return ""
    table = model.table(use.table)
    if table is None:  # validate has reported a missing table already
        return ""
    columns = ", ".join(
        f"NULL::{c.type_sql} AS {quote(name)}" for name, c in table.columns.items()
    )
    return f" FROM (SELECT {columns}) AS {quote(use.table.name)}"


def _query_text(use: "Expression", rows: str) -> str:
    from ..operations.backfill import ROWS  # the placeholder an insert's select uses

    return use.sql.replace(ROWS, rows)


def _explain_sql(use: "Expression", model: SchemaModel) -> str:
    source = _row_source(use, model)
    if use.is_query:
        rows = f"(SELECT *{source})" if source else "(SELECT 1)"
        return f"EXPLAIN {_query_text(use, rows)}"
    if use.type_sql == "boolean":  # a condition: WHERE takes booleans only, as CHECK does
        return f"EXPLAIN SELECT 1{source} WHERE ({use.sql})"
    type_sql = use.type_sql
    if use.to_column is not None and use.table is not None:
        table = model.table(use.table)
        column = table.columns.get(use.to_column) if table else None
        type_sql = column.type_sql if column else None
    value = f"({use.sql})::{type_sql}" if type_sql else f"({use.sql})"
    return f"EXPLAIN SELECT {value}{source}"
