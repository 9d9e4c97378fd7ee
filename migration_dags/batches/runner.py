"""Running one partition: its batches, each in a transaction of its own, throttled.

Each batch runs the task's statement for its keys and, in the same transaction, records its rows
and the partition's saved position (ledger.py), so a kill at any moment resumes where the
committed work ends.  Batches commit with synchronous_commit off (a batch lost in a server crash
is lost together with its saved position, and runs again) and mark themselves as the tool's own
writes (db.TOOL_WRITE_SETTING), so sync triggers that honour it skip them; while no client is busy
the throttle lets two batches run at once, each on its own connection.  Zero downtime: throttle.py.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
from psycopg import errors as pg_errors

from .. import state
from ..db import mark_backfill_of
from ..operations.base import BackfillTask
from .ledger import BatchRange, Ledger
from .planner import key_spec, next_batch_end
from .progress import BatchProgress, PartitionProgress, PartitionResult
from .throttle import BatchWatch, Pause, Throttle, as_throttle


def run_partition(
    conn: psycopg.Connection,
    migration: str,
    partition: str,
    tasks: list[BackfillTask],
    batch_size: int,
    lock_timeout_ms: int = 500,
    throttle: Throttle | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> PartitionResult:
    """Run the partition's remaining batches; returns at once when it is already done.

    `throttle` (throttle.Throttle) decides pauses between batches, how many batches run at once
    (each on its own connection; `conn` itself plans them and reads the pause conditions), and
    may cancel and shrink a batch clients wait on; `batch_size` is the largest batch.
    `on_batch` receives a BatchProgress after every committed batch and now and then while
    paused.
    """
    saved = state.read_range(conn, migration, partition)
    if saved is None:
        raise KeyError(f"partition {partition!r} of migration {migration!r} is not planned")
    if saved.done:
        return PartitionResult(partition, 0, 0, 0.0, 0, already_done=True)
    started = time.monotonic()
    lower, upper = saved.lower, saved.upper
    position = saved.position if saved.position is not None else lower
    task = tasks[saved.task_index]
    spec = key_spec(conn, task.range_table)
    gate = as_throttle(throttle)
    progress = PartitionProgress(
        conn, migration, partition, task, spec, lower, upper, position, on_batch)
    result = PartitionResult(partition, 0, 0, 0.0, 0)
    ledger = Ledger(migration, partition)
    pool = _Workers(conn, gate, lock_timeout_ms, ledger, task.own_trigger,
                    fire_user_triggers=task.user_triggers == "fire")
    top = max(1, int(batch_size))
    size = gate.first_size(top)
    planned_to, all_planned = position, False
    redo: list[BatchRange] = []
    last_batch_s, waited = 0.0, None
    unreported = Pause()  # pauses since the last progress report
    try:
        while True:
            while pool.running < gate.workers() and (redo or not all_planned):
                pause = gate.before_batch(
                    conn, last_batch_s, waited,
                    report=lambda p: progress.report(result, started, size, 0.0, False, p))
                waited = None
                result.paused_s += pause.seconds
                for kind, secs in pause.by_reason.items():
                    result.pauses[kind] = result.pauses.get(kind, 0.0) + secs
                    unreported.add(kind, secs, pause.detail)
                if redo:
                    rng = redo.pop(0)
                else:
                    end, count, more = next_batch_end(
                        conn, task.range_table, spec, planned_to, upper, size)
                    rng = BatchRange(planned_to, end if more else upper, count, not more)
                    planned_to, all_planned = rng.upper, not more
                    ledger.add(rng)
                statement = task.for_range(spec.range_sql(rng.lower, rng.upper))
                result.sample_sql = result.sample_sql or statement
                pool.submit(rng, statement)
            if pool.running == 0:
                break
            done_ = pool.next_done()
            result.retries += done_.retries
            last_batch_s = done_.seconds
            if done_.seen.waiters or done_.seen.cancelled:
                waited = done_.seen  # the next dispatch lets those clients through first
            size = gate.next_size(size, 0 if done_.changed is None else done_.rng.keys,
                                  done_.seconds, done_.seen, top)
            if done_.changed is None:
                # a client waited on the batch too long: it was rolled back; do it again later
                result.cancelled_batches += 1
                redo = sorted([*redo, done_.rng], key=ledger.order)
                continue
            result.rows += done_.changed
            result.batches += 1
            progress.advance(done_.rng.keys)
            progress.report(result, started, done_.rng.keys, done_.seconds * 1000,
                            ledger.all_saved(), unreported)
            unreported = Pause()
    finally:
        pool.close()
        gate.close()  # the watcher's connection; reopened when needed
    result.elapsed_s = time.monotonic() - started
    result.rows_scanned = progress.done - progress.done_at_start
    return result


@dataclass
class _Done:
    rng: BatchRange
    changed: int | None  # None: the throttle cancelled the batch
    seen: BatchWatch
    retries: int
    seconds: float
    error: BaseException | None = None


class _Workers:
    """Runs batches: on the planning connection itself when the throttle allows only one at a
    time (no way to connect), else each on a worker connection of its own, in threads."""

    def __init__(self, conn: psycopg.Connection, gate: Throttle, lock_timeout_ms: int,
                 ledger: Ledger, own_trigger: str | None = None, fire_user_triggers: bool = False):
        self.conn, self.gate, self.ledger = conn, gate, ledger
        self.fire_user_triggers = fire_user_triggers
        self.lock_timeout_ms = lock_timeout_ms
        self.own_trigger = own_trigger
        self.threaded = gate.settings.max_workers > 1 and gate.can_connect
        self.running = 0
        self._done: queue.Queue[_Done] = queue.Queue()
        self._idle: list[psycopg.Connection] = []
        self._all: list[psycopg.Connection] = []

    def submit(self, rng: BatchRange, statement: str) -> None:
        if not self.threaded:
            self._done.put(self._run(self.conn, rng, statement))
            self.running += 1
            return
        self.running += 1
        conn = self._idle.pop() if self._idle else self._open()
        thread = threading.Thread(target=self._thread, args=(conn, rng, statement),
                                  name="backfill-batch", daemon=True)
        thread.start()

    def _open(self) -> psycopg.Connection:
        conn = self.gate.open_worker()
        self._all.append(conn)
        return conn

    def _thread(self, conn: psycopg.Connection, rng: BatchRange, statement: str) -> None:
        try:
            done = self._run(conn, rng, statement)
            self._idle.append(conn)  # only now: the batch's watch has ended
        except BaseException as exc:  # noqa: BLE001 - handed to the planning thread
            done = _Done(rng, None, BatchWatch(), 0, 0.0, exc)
        self._done.put(done)

    def next_done(self) -> _Done:
        done = self._done.get()
        self.running -= 1
        if done.error is not None:
            while self.running:  # let the other batches finish before raising
                self._done.get()
                self.running -= 1
            raise done.error
        return done

    def _run(self, conn: psycopg.Connection, rng: BatchRange, statement: str) -> _Done:
        """One batch and its state write, in one transaction.  Lock timeouts and deadlocks are
        retried with backoff: the batch gives way, never the client."""
        retries = 0
        started = time.monotonic()
        while True:
            with self.gate.watch(conn) as seen:
                locked = False
                try:
                    with conn.transaction():
                        conn.execute(_batch_settings(self.lock_timeout_ms, self.own_trigger,
                                                     self.fire_user_triggers))
                        changed = max(conn.execute(statement).rowcount, 0)
                        self.ledger.lock.acquire()
                        locked = True
                        saved = self.ledger.save(conn, rng, changed)
                    self.ledger.committed(rng, saved)
                    return _Done(rng, changed, seen, retries, time.monotonic() - started)
                except pg_errors.QueryCanceled:
                    if not seen.cancelled:
                        raise  # statement_timeout, or someone else's cancel: not ours to hide
                    return _Done(rng, None, seen, retries, time.monotonic() - started)
                except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected,
                        pg_errors.SerializationFailure):
                    retries += 1
                finally:
                    if locked:
                        self.ledger.lock.release()
            time.sleep(min(0.05 * 2 ** min(retries, 6), 2.0))

    def close(self) -> None:
        while self.running:  # only after an error elsewhere; normally none are left
            self._done.get()
            self.running -= 1
        for conn in self._all:
            conn.close()


def _batch_settings(lock_timeout_ms: int, own_trigger: str | None,
                    fire_user_triggers: bool = False) -> str:
    # One round trip. synchronous_commit off: a batch lost in a crash is lost with its saved
    # position and runs again.  mark_backfill_of: the task's own sync trigger skips the batch.
    # session_replication_role = replica: user triggers (an updated_at trigger) do not fire on the
    # batch; the tool's sync triggers are ENABLE ALWAYS and still do; CHECK and NOT NULL are not
    # triggers and still hold; FK triggers are skipped, so validation checks those FKs
    # (operations/common/user_triggers.py). `user_triggers: fire` keeps the origin role.
    replica = "" if fire_user_triggers else "SET LOCAL session_replication_role = replica; "
    return (f"SET LOCAL synchronous_commit = off; {replica}{mark_backfill_of(own_trigger)}; "
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
