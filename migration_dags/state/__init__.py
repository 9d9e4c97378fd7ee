"""Every statement against the tool's own schemas, `migration_dags` (state, trigger functions)
and `migration_dags_backup` (backups), lives in this package; callers import from here.

    schema.py         the schema names and every state table's DDL; creating and dropping them
    steps.py          which steps of a migration are applied
    backups.py        the record of each table's backup (the copies themselves: backup.py)
    ranges.py         the backfill's key-range partitions, their saved positions and rows done
    started.py        which steps started and did not finish (a run died inside them)
    saved_columns.py  definitions of columns drop_column drops, for its exact undo
    capture.py        change capture: the trigger and table recording the application's writes
                      to each backed-up table during the migration window
    files.py          the checksum and text of the file each migration was applied from
"""

from .backups import BackupRecord, backup_row_count, backups, forget_backups, record_backup
from .ranges import (
    SavedRange,
    forget_ranges,
    ranges_status,
    range_keys,
    read_range,
    record_range,
    reset_ranges,
    rows_done_in_other_ranges,
    save_range_position,
    save_range_position_sql,
    touch_ranges,
)
from .files import forget_file, record_file, recorded_file
from .saved_columns import SavedColumn, read_saved_columns
from .schema import (
    BACKUP_SCHEMA,
    STATE_SCHEMA,
    drop_state_if_unused,
    ensure_state_tables,
    state_exists,
)
from .started import forget_started, is_started, mark_started, started_steps
from .steps import applied_steps, is_applied, mark_applied, mark_undone, migrations_with_step

__all__ = [
    "BACKUP_SCHEMA", "STATE_SCHEMA", "BackupRecord", "SavedColumn", "SavedRange",
    "applied_steps", "backup_row_count", "backups", "drop_state_if_unused",
    "ensure_state_tables", "forget_backups", "forget_ranges", "is_applied", "mark_applied",
    "mark_undone", "ranges_status", "range_keys", "read_range", "read_saved_columns",
    "record_backup", "record_range", "reset_ranges", "rows_done_in_other_ranges",
    "save_range_position", "save_range_position_sql", "state_exists", "touch_ranges",
    "forget_started", "is_started", "mark_started", "started_steps", "migrations_with_step",
    "forget_file", "record_file", "recorded_file",
]
