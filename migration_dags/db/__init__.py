"""The target database: connections, the migration lock, the action runner, the tool-write marker.

    connect.py      connect(), URLs (libpq form, display form without the password)
    lock.py         migration_lock(): one advisory lock per database, holder named on refusal
    lease.py        command_lock(): that lock held for a whole command, across its steps
    faults.py       checkpoints where the crash tests die (inert unless armed)
    runner.py       ActionRunner: each action under lock_timeout, retried with backoff
    tool_writes.py  the session setting the tool's sync triggers read to skip its own writes
"""

from .connect import APP_PREFIX, connect, display_url, is_connection_lost, libpq_url
from .lease import command_lock, covering
from .lock import ADVISORY_LOCK_KEY, lock_holder, migration_lock
from .runner import ActionRunner, LockSettings
from .tool_writes import MARK_TOOL_WRITE, TOOL_WRITE_SETTING, mark_backfill_of, skip_writes_of

__all__ = [
    "APP_PREFIX", "connect", "display_url", "is_connection_lost", "libpq_url", "command_lock",
    "covering", "ADVISORY_LOCK_KEY", "lock_holder",
    "migration_lock", "ActionRunner", "LockSettings", "MARK_TOOL_WRITE", "TOOL_WRITE_SETTING",
    "mark_backfill_of", "skip_writes_of",
]
