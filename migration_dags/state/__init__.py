"""Every statement against the tool's own schemas, `migration_dags` (state, trigger functions)
and `migration_dags_backup` (backups), lives in this package.

    store.py          applied steps, backups, the schemas' creation and removal
    saved_columns.py  definitions of columns drop_column drops, for its exact undo
"""

from .store import (
    BACKUP_SCHEMA,
    STATE_SCHEMA,
    BackupRecord,
    applied_steps,
    backups,
    drop_state_if_unused,
    ensure_state_tables,
    forget_backups,
    is_applied,
    mark_applied,
    mark_undone,
    record_backup,
    reset_ranges,
    state_exists,
)

__all__ = [
    "BACKUP_SCHEMA", "STATE_SCHEMA", "BackupRecord", "applied_steps", "backups",
    "drop_state_if_unused", "ensure_state_tables", "forget_backups", "is_applied", "mark_applied",
    "mark_undone", "record_backup", "reset_ranges", "state_exists",
]
