"""What a failing backfill batch is turned into: a BackfillFailedError naming where it failed.

The runner (batches/) raises the database error as it comes; this module reads the partition's
saved position (every batch before it committed) and looks for the first failing key after it:
it runs the task's statement over growing key prefixes of the next keys, each in a transaction
that is rolled back, bisecting (about log2(keys) statements over at most `limit` keys). Nothing it
runs stays; it holds row locks on those keys only for the length of each probe.
"""

from __future__ import annotations

import psycopg

from .. import state
from ..batches import key_spec
from ..db import mark_backfill_of
from ..errors import BackfillFailedError
from ..operations.base import BackfillTask

LIMIT = 100_000  # keys searched for the first failing one


def _key_text(key: list[str] | None) -> str:
    return "(" + ", ".join(key) + ")" if key is not None else "(start)"


def batch_failure(conn: psycopg.Connection, migration: str, partition: str, task: BackfillTask,
                  error: psycopg.Error, committed_rows: int, lock_timeout_ms: int) -> BackfillFailedError:
    saved = state.read_range(conn, migration, partition)
    position = saved.position if saved.position is not None else saved.lower
    spec = key_spec(conn, task.range_table)
    first = None
    try:
        first = _first_failing_key(conn, task, spec, position, saved.upper, lock_timeout_ms)
    except psycopg.Error:  # looking is best effort; the error itself is what matters
        pass
    upper = _key_text(saved.upper) if saved.upper is not None else "(end)"
    detail = " ".join(str(error).split())
    return BackfillFailedError(
        migration, partition, task.description, f"{_key_text(position)} .. {upper}",
        _key_text(first) if first else None, f"{type(error).__name__}: {detail}",
        committed_rows, _key_text(position))


def _fails(conn: psycopg.Connection, task: BackfillTask, range_sql: str, lock_timeout_ms: int) -> bool:
    replica = "" if task.user_triggers == "fire" else "SET LOCAL session_replication_role = replica; "
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"{replica}{mark_backfill_of(task.own_trigger)}; "
                         f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            conn.execute(task.for_range(range_sql))
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error:
        return True
    return False


def _first_failing_key(conn, task, spec, position, upper, lock_timeout_ms) -> list[str] | None:
    cols = spec.cols("t")
    keys = [list(r) for r in conn.execute(
        f"SELECT {', '.join(c + '::text' for c in cols)} FROM {task.range_table.sql} AS t "
        f"WHERE {spec.range_sql(position, upper, 't')} ORDER BY {', '.join(cols)} LIMIT {LIMIT}")]
    if not keys or not _fails(conn, task, spec.range_sql(position, keys[-1]), lock_timeout_ms):
        return None
    lo, hi = 0, len(keys) - 1  # the prefix up to keys[hi] fails; find the shortest that does
    while lo < hi:
        mid = (lo + hi) // 2
        if _fails(conn, task, spec.range_sql(position, keys[mid]), lock_timeout_ms):
            hi = mid
        else:
            lo = mid + 1
    return keys[lo]
