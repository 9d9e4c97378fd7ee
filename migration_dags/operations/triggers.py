"""Row triggers that keep a new shape in step with live writes during a migration.

The function lives in the tool's own schema (`migration_dags`); inside it every column of the row
is a variable of the same name, so a user's `up` expression can say `created_at` rather than
`NEW.created_at` (pgroll's approach).
"""

from __future__ import annotations

from ..actions import Action
from ..identifiers import TableName, quote

TOOL_SCHEMA = "migration_dags"


def function_sql(trigger: str) -> str:
    return f"{quote(TOOL_SCHEMA)}.{quote(trigger)}"


def row_trigger(
    table: TableName, trigger: str, body: str, columns: list[str], description: str,
    events: str = "INSERT OR UPDATE",
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
            f"FOR EACH ROW EXECUTE FUNCTION {function_sql(trigger)}()",
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
