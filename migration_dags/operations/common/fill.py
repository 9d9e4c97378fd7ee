"""A backfill task that sets one column from an expression over the row (add_column's `up`,
alter_column's shadow column), touching only rows whose value is still different, so a batch run
again changes nothing."""

from __future__ import annotations

from ...identifiers import TableName, quote
from ..base import RANGE_PLACEHOLDER, BackfillTask


def fill_column(description: str, table: TableName, column: str, expression: str,
                own_trigger: str, user_triggers: str) -> BackfillTask:
    col = quote(column)
    return BackfillTask(
        description, table,
        f"UPDATE {table.sql} SET {col} = ({expression}) "
        f"WHERE {RANGE_PLACEHOLDER} AND {col} IS DISTINCT FROM ({expression})",
        own_trigger=own_trigger, user_triggers=user_triggers,
    )
