"""Row triggers that keep a new shape in step with live writes during a migration.

The function lives in the tool's own schema (`migration_dags`). A user's `up` expression says
`created_at`, not `NEW.created_at`; two ways to make that work inside the function:

- `row_expression(expr)` evaluates it over `(SELECT NEW.*)`, so every column of the row *as it is
  when the trigger fires* is in scope. Preferred: a column added by an earlier operation of the
  same migration is visible, and nothing about the table is frozen into the function.
- `columns=[...]` declares one variable per listed column (pgroll's approach); only the listed
  columns are in scope, so the list must be right when the trigger first fires.
"""

from __future__ import annotations

from ...actions import Action
from ...identifiers import TableName, quote

from ...state import STATE_SCHEMA as TOOL_SCHEMA  # defined once, in state
from .user_triggers import enable_always


def function_sql(trigger: str) -> str:
    return f"{quote(TOOL_SCHEMA)}.{quote(trigger)}"


# Alias of the row inside row_expression; unusual enough not to shadow a user's table name.
ROW_ALIAS = "migration_dags_row"


def row_expression(expr: str) -> str:
    """`expr` over the columns of NEW, for a trigger body: `NEW.x := {row_expression(up)};`."""
    return f"(SELECT ({expr}) FROM (SELECT NEW.*) AS {ROW_ALIAS})"


def row_trigger(
    table: TableName, trigger: str, body: str, columns: list[str], description: str,
    events: str = "INSERT OR UPDATE", when: str | None = None,
) -> list[Action]:
    declares = "".join(
        f"  {quote(c)} {table.sql}.{quote(c)}%TYPE := NEW.{quote(c)};\n" for c in columns
    )
    function = (
        f"CREATE OR REPLACE FUNCTION {function_sql(trigger)}() RETURNS trigger\n"
        f"LANGUAGE plpgsql AS $migration_dags$\nDECLARE\n{declares}BEGIN\n  {body}\n"
        "  RETURN NEW;\nEND\n$migration_dags$"
    )
    return [
        Action(f"trigger function: {description}", function, takes_lock=False),
        Action(
            f"trigger on {table}: {description}",
            f"CREATE OR REPLACE TRIGGER {quote(trigger)} BEFORE {events} ON {table.sql} "
            f"FOR EACH ROW {f'WHEN ({when}) ' if when else ''}"
            f"EXECUTE FUNCTION {function_sql(trigger)}();\n"
            f"{enable_always(table, trigger)}",  # fires on replica-mode backfill batches too
        ),
    ]


def drop_row_trigger(table: TableName, trigger: str) -> list[Action]:
    return [
        Action(
            f"drop trigger {trigger} on {table}",
            f"DROP TRIGGER IF EXISTS {quote(trigger)} ON {table.sql}",
            only_if=f"SELECT to_regclass({table.regclass_literal}) IS NOT NULL",
        ),
        Action(
            f"drop trigger function {trigger}",
            f"DROP FUNCTION IF EXISTS {function_sql(trigger)}()",
            takes_lock=False,
        ),
    ]
