"""The keys of the rows insert_rows inserted, kept so its undo deletes exactly those rows.

    migration_dags.inserted_rows   one row per (migration, operation, key) the operation inserted

Written by the same statement that inserts the rows (a CTE over INSERT ... RETURNING), so a row is
recorded if and only if this migration inserted it: a row that was there before (or that the
application inserted first) is never recorded, so the undo never deletes it. Created by the
operation's start, like saved_columns; dropped with the tool's schemas once empty.
"""

from __future__ import annotations

from ..actions import Action
from ..identifiers import TableName, literal
from .schema import INSERTED_ROWS

INSERTED_ROWS_DDL = f"""CREATE TABLE IF NOT EXISTS {INSERTED_ROWS} (
    migration text NOT NULL,
    operation bigint NOT NULL,     -- the operation's index in the file
    table_schema text NOT NULL,
    table_name text NOT NULL,
    key jsonb NOT NULL,               -- {{column: value}} of the row's key columns
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, operation, key)
)"""


def create_action() -> Action:
    return Action("create the table of inserted row keys", INSERTED_ROWS_DDL, takes_lock=False)


def where_sql(migration: str, operation: int, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"{prefix}migration = {literal(migration)} AND {prefix}operation = {int(operation)}"


def record_sql(migration: str, operation: int, table: TableName, key_json: str, source: str) -> str:
    """INSERT the keys `source` (a CTE name) returned, as `key_json` (an expression over it)."""
    return (f"INSERT INTO {INSERTED_ROWS} (migration, operation, table_schema, table_name, key)\n"
            f"SELECT {literal(migration)}, {int(operation)}, {literal(table.schema)}, "
            f"{literal(table.name)}, {key_json} FROM {source}\nON CONFLICT DO NOTHING")


def forget_action(migration: str, operation: int, description: str) -> Action:
    return Action(
        description,
        f"DELETE FROM {INSERTED_ROWS} WHERE {where_sql(migration, operation)}",
        takes_lock=False,
        only_if=exists_sql(),
    )


def exists_sql() -> str:
    return f"SELECT to_regclass({literal(INSERTED_ROWS)}) IS NOT NULL"
