"""Running one partition: small key-range batches, one after the other, each its own transaction.

Each batch runs the task's statement for its keys and, in the same transaction, moves the
partition's saved position (state.save_range_position), so a kill at any moment resumes where
the committed work ends, and a batch run again changes nothing (the statements are idempotent).
Both go in one statement (batch_statement), which also looks up where the next batch ends: a
batch is four round trips (BEGIN, its settings, that statement, COMMIT), not six.

Batches commit with synchronous_commit off: a commit then does not wait for its WAL flush, which
made the backfill ~1.7x faster and kept clients' commits from queueing behind ours (FACTS.md).
A batch lost in a server crash is lost together with its saved position (same transaction, same
WAL), and the resume does it again.  The step ends with one synchronous commit (`make_durable`),
which flushes every earlier one.  A batch waits at most `lock_timeout_ms` on a client's lock, then
rolls back and tries again: the batch waits, never the clients.  Pauses: throttle.py.
"""

from __future__ import annotations

import time
from typing import Callable

import psycopg
from psycopg import errors as pg_errors

from .. import state
from ..db import mark_backfill_of
from ..operations.base import BackfillTask
from .planner import batch_end, batch_end_sql, key_spec, next_batch_end
from .progress import BatchProgress, PartitionProgress, PartitionResult
from .throttle import Pause, Throttle, as_throttle

# A batch waits this long on a client's row lock before giving way (then it tries again).
BATCH_LOCK_TIMEOUT_MS = 50


def batch_settings(lock_timeout_ms: int, own_trigger: str | None,
                   fire_user_triggers: bool = False) -> str:
    """The session settings of every batch transaction, in one round trip: the one place to
    change them.  synchronous_commit off: see the module doc.  mark_backfill_of: the task's own
    sync trigger skips the batch (its statement already does that trigger's work).
    session_replication_role = replica: user triggers (an updated_at trigger) do not fire on the
    batch; the tool's sync triggers are ENABLE ALWAYS and still do; CHECK and NOT NULL are not
    triggers and still hold; FK triggers are skipped, so validation checks those FKs
    (operations/common/user_triggers.py). `user_triggers: fire` keeps the origin role."""
    replica = "" if fire_user_triggers else "SET LOCAL session_replication_role = replica; "
    return (f"SET LOCAL synchronous_commit = off; {replica}{mark_backfill_of(own_trigger)}; "
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


def batch_statement(
    statement: str, migration: str, partition: str, saved_position: list[str] | None,
    done: bool, next_end: str | None,
) -> str:
    """One statement for a batch: the task's `statement` (an UPDATE or INSERT), the partition's
    saved position moved to `saved_position` with the rows it changed counted, and, unless
    `done`, where the next batch ends (`next_end`: planner.batch_end_sql, always one row). Its
    row: rows changed, then next_end's columns."""
    ledger = state.save_range_position_sql(
        migration, partition, saved_position, "SELECT count(*) FROM mdg_batch", done)
    head = (f"WITH mdg_batch AS ({statement}\nRETURNING 1), mdg_saved AS ({ledger})\n"
            "SELECT (SELECT count(*) FROM mdg_batch)")
    if next_end is None:
        return head
    return f"{head}, mdg_next.* FROM ({next_end}) AS mdg_next"


def make_durable(conn: psycopg.Connection, migration: str) -> None:
    """One synchronous commit that writes WAL: it flushes every asynchronous batch before it."""
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = on")
        state.touch_ranges(conn, migration)


def run_partition(
    conn: psycopg.Connection,
    migration: str,
    partition: str,
    tasks: list[BackfillTask],
    batch_size: int,
    lock_timeout_ms: int = BATCH_LOCK_TIMEOUT_MS,
    throttle: Throttle | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> PartitionResult:
    """Run the partition's remaining batches of `batch_size` keys; returns at once when it is
    already done.  `on_batch` receives a BatchProgress after every committed batch (and now and
    then while paused).  The caller ends the step with make_durable."""
    saved = state.read_range(conn, migration, partition)
    if saved is None:
        raise KeyError(f"partition {partition!r} of migration {migration!r} is not planned")
    if saved.done:
        return PartitionResult(partition, 0, 0, 0.0, 0, already_done=True)
    started = time.monotonic()
    lower, upper = saved.lower, saved.upper
    position = saved.position if saved.position is not None else lower
    task = tasks[saved.task_index]
    if task.copy is not None:  # rows from another database (cross_database/copier.py)
        return task.copy.run_partition(conn, migration, partition, saved, batch_size,
                                       lock_timeout_ms, throttle, on_batch)
    spec = key_spec(conn, task.range_table)
    gate = as_throttle(throttle)
    progress = PartitionProgress(
        conn, migration, partition, task, spec, lower, upper, position, on_batch)
    result = PartitionResult(partition, 0, 0, 0.0, 0)
    size = max(1, int(batch_size))
    settings = batch_settings(lock_timeout_ms, task.own_trigger,
                              fire_user_triggers=task.user_triggers == "fire")
    last_batch_s = 0.0
    keys = len(spec.columns)
    end, count, more = next_batch_end(conn, task.range_table, spec, position, upper, size)
    while True:
        pause = gate.before_batch(
            conn, last_batch_s,
            report=lambda p: progress.report(result, started, size, 0.0, False, p))
        result.paused_s += pause.seconds
        for kind, secs in pause.by_reason.items():
            result.pauses[kind] = result.pauses.get(kind, 0.0) + secs
        batch_started = time.monotonic()
        batch_upper = end if more else upper
        statement = task.for_range(spec.range_sql(position, batch_upper))
        result.sample_sql = result.sample_sql or statement
        combined = batch_statement(
            statement, migration, partition, batch_upper, not more,
            batch_end_sql(task.range_table, spec, batch_upper, upper, size) if more else None)
        tries = 0
        while True:
            try:
                with conn.transaction():
                    conn.execute(settings)
                    row = conn.execute(combined).fetchone()
                    gate.sample(conn)  # at most every check_interval_s
                break
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected,
                    pg_errors.SerializationFailure):
                # a client holds one of the rows: let it finish, then the same batch again
                tries += 1
                result.retries += 1
                time.sleep(min(0.01 * 2 ** min(tries, 7), 1.0))
        changed = int(row[0])
        last_batch_s = time.monotonic() - batch_started
        position = batch_upper
        result.rows += changed
        result.batches += 1
        progress.advance(count)
        progress.report(result, started, count, last_batch_s * 1000, not more, pause)
        if not more:
            break
        end, count, more = batch_end(row[1:], keys, size)
        if end is None:  # fewer than a batch of keys remain: one last batch to upper
            end, more = batch_upper, False
    result.elapsed_s = time.monotonic() - started
    result.rows_scanned = progress.done - progress.done_at_start
    return result
