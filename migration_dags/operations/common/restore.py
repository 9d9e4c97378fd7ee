"""Putting rows back as the pre-migration backup has them, as actions for the undo verbs.

unbackfill and uncomplete use these. They keep every application write made since the backup
(state/capture.py records them): a column the application wrote keeps what it wrote, a row it
inserted stays. Rows are matched by key (the table's primary key or unique
NOT NULL key, as the engine's context gives it) and only rows that differ are written, so a
restore run twice changes nothing the second time.

A restore writes back values that were already there, so it must not look like a user's write:
it runs with `session_replication_role = replica`, which keeps user triggers (an `updated_at`
trigger, an audit trigger) from firing and turning the restore itself into a change. It also
skips foreign key checks: a value put back is not checked again against rows deleted since the
backup. Setting it needs superuser or, on PostgreSQL 15+, `GRANT SET ON PARAMETER
session_replication_role`.
"""

from __future__ import annotations

from ...actions import Action
from ...backup_tables import delete_missing_sql, restore_columns_sql
from ...db import MARK_TOOL_WRITE
from ...identifiers import TableName

# SET LOCAL: the setting ends with the action's own transaction (actions are transactional).
# The tool's sync triggers are ENABLE ALWAYS (they fire in replica mode, for backfill batches):
# the tool-write mark makes them skip a restore, as replica mode alone did before.
QUIET = f"SET LOCAL session_replication_role = replica;\n{MARK_TOOL_WRITE};\n"


def restore_columns(
    table: TableName, backup: TableName, keys: list[str], columns: list[str], why: str
) -> Action:
    """Set `columns` of every row present in the backup back to the backed-up values, except
    the columns the application wrote since the backup: those keep its writes (state/capture.py)."""
    restored = [c for c in columns if c not in keys]  # keys are what rows are matched on
    return Action(
        f"restore {', '.join(restored)} of {table} from its backup ({why})",
        QUIET + restore_columns_sql(table, backup, keys, columns, keep_writes=True),
    )


def delete_rows_not_in_backup(table: TableName, backup: TableName, keys: list[str], why: str) -> Action:
    """Delete rows whose key the backup does not have (rows the migration inserted), except
    rows the application inserted since the backup (state/capture.py).

    Runs with triggers on: a row another table references must make this fail loudly (or cascade
    as the schema says), not silently leave orphans.
    """
    return Action(
        f"delete rows of {table} that are not in its backup ({why})",
        f"{MARK_TOOL_WRITE};\n" + delete_missing_sql(table, backup, keys, keep_writes=True),
    )
