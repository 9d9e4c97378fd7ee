"""Batched, resumable, throttled backfill over primary-key ranges (keyset pagination, any key).

Layout: a backfill task's table is cut into key-range partitions of about `partition_rows` rows
(these become Dagster dynamic partitions); each partition is processed in batches of up to
`batch_size` keys.  Each batch is one transaction that runs the task's statement for its keys
*and* records its rows and the partition's saved position ("every key up to here is done"), so
a kill at any moment resumes where the committed work ends, and a batch run again changes
nothing (the statements are idempotent).  When two batches run at once and the later one commits
first, the position waits for the earlier one (_Ledger), so after a kill at most the batches that
were running are scanned again, changing no row.  The first partition has no lower bound and the
last no upper bound, so rows inserted at either end during the backfill are covered (the
operation's trigger covers every live write anyway).

Keys: the primary key, else a unique NOT NULL key, of any orderable type, composite too; bounds
are compared as ROW(...) values, so the btree on the key serves every range, and they are stored
as text (JSON arrays) and cast back to the key's types.  Every key query names the table's columns
through an alias: `SELECT t.id::text ... ORDER BY t.id` orders by the key, not by its text.

Speed: batches commit with synchronous_commit off (a batch lost in a server crash is lost together
with its saved position, and runs again) and mark themselves as the tool's own writes
(runtime.TOOL_WRITE_SETTING), so sync triggers that honour it skip them; while no client is busy
the throttle lets two batches run at once, each on its own connection.  Planning steps through the
key's index (OFFSET within a key range) instead of numbering every row.  Zero downtime: throttle.py.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import psycopg
from psycopg import errors as pg_errors

from ..errors import NoPrimaryKeyError
from ..identifiers import TableName, literal, quote
from ..operations.base import BackfillTask
from ..db import mark_backfill_of
from ..schema_model import primary_key_columns
from ..state import STATE_SCHEMA
from .throttle import BatchWatch, Pause, Throttle, ThrottleSettings, as_throttle

# Alias of the table in every key query we build.
_T = "mdg_t"


@dataclass(frozen=True)
class KeySpec:
    columns: list[str]
    types: list[str]

    def cols(self, alias: str | None = None) -> list[str]:
        prefix = f"{alias}." if alias else ""
        return [prefix + quote(c) for c in self.columns]

    @property
    def row_sql(self) -> str:
        return "ROW(" + ", ".join(self.cols()) + ")"

    def value_sql(self, values: list[str]) -> str:
        return "ROW(" + ", ".join(f"{literal(v)}::{t}" for v, t in zip(values, self.types)) + ")"

    def range_sql(
        self, lower: list[str] | None, upper: list[str] | None, alias: str | None = None
    ) -> str:
        """(lower, upper] as a predicate on the key; None is unbounded."""
        row = "ROW(" + ", ".join(self.cols(alias)) + ")"
        parts = []
        if lower is not None:
            parts.append(f"{row} > {self.value_sql(lower)}")
        if upper is not None:
            parts.append(f"{row} <= {self.value_sql(upper)}")
        return " AND ".join(parts) or "TRUE"


def key_spec(conn: psycopg.Connection, table: TableName, where: str = "") -> KeySpec:
    """The key batches address rows by; NoPrimaryKeyError when the table has none."""
    columns = primary_key_columns(conn, table)
    if not columns:
        raise NoPrimaryKeyError(where or str(table), str(table))
    types = [
        conn.execute(
            """SELECT format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = to_regclass(%s) AND attname = %s""",
            (table.sql, c),
        ).fetchone()[0]
        for c in columns
    ]
    return KeySpec(columns, types)


def partition_key(task_index: int, index: int) -> str:
    return f"{task_index:02d}-{index:05d}"


def plan_partitions(
    conn: psycopg.Connection, migration: str, tasks: list[BackfillTask], partition_rows: int
) -> list[str]:
    """Cut each task's table into key ranges and record them (idempotent: kept if present).

    Steps through the key's index `partition_rows` keys at a time: one index-only pass, no sort.
    """
    existing = conn.execute(
        f"SELECT partition_key FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s ORDER BY 1",
        (migration,),
    ).fetchall()
    if existing:
        return sorted({r[0] for r in existing})
    keys: list[str] = []
    with conn.transaction():
        for t_index, task in enumerate(tasks):
            spec = key_spec(conn, task.range_table)
            edges: list[list[str] | None] = [None]
            while True:
                row = conn.execute(
                    f"SELECT {_text_cols(spec)} "
                    f"FROM {task.range_table.sql} AS {_T} "
                    f"WHERE {spec.range_sql(edges[-1], None, _T)} "
                    f"ORDER BY {', '.join(spec.cols(_T))} OFFSET {int(partition_rows) - 1} LIMIT 1"
                ).fetchone()
                if row is None:
                    break
                edges.append(list(row))
            edges.append(None)
            if len(edges) > 2 and _is_last_key(conn, task.range_table, spec, edges[-2]):
                # the last bound is the table's last key: no empty partition after it
                edges.pop(-2)
            for i in range(len(edges) - 1):
                key = partition_key(t_index, i)
                conn.execute(
                    f"""INSERT INTO {STATE_SCHEMA}.backfill_ranges
                        (migration, partition_key, task_index, lower_key, upper_key)
                        VALUES (%s, %s, %s, %s, %s)""",
                    (migration, key, t_index, _json(edges[i]), _json(edges[i + 1])),
                )
                keys.append(key)
    return keys


def _text_cols(spec: KeySpec, alias: str = _T) -> str:
    return ", ".join(f"{c}::text" for c in spec.cols(alias))


def _is_last_key(conn: psycopg.Connection, table: TableName, spec: KeySpec, key: list[str]) -> bool:
    return conn.execute(
        f"SELECT NOT EXISTS (SELECT 1 FROM {table.sql} AS {_T} WHERE {spec.range_sql(key, None, _T)})"
    ).fetchone()[0]


def _json(value: list[str] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _as_list(value) -> list[str] | None:
    if value is None:
        return None
    return json.loads(value) if isinstance(value, str) else list(value)


# -- progress ----------------------------------------------------------------------------------
@dataclass
class BatchProgress:
    """Sent to `on_batch` after every committed batch (and while paused).

    `rows` counts rows this run changed; `rows_done`/`rows_total` count keys of the partition
    passed so far / in all (an exact count taken when the run started, plus rows inserted since);
    `table_rows_done`/`table_rows_total` the same over the task's whole table (estimates: other
    partitions count the rows they changed, the total comes from the backup's row count or the
    planner's statistics).
    """

    partition: str
    rows: int
    batches: int
    elapsed_s: float
    done: bool
    rows_done: int = 0
    rows_total: int = 0
    rows_per_s: float = 0.0
    eta_s: float | None = None
    batch_size: int = 0
    batch_ms: float = 0.0
    paused_s: float = 0.0
    pause_reason: str = ""
    retries: int = 0
    table: str = ""
    table_rows_done: int = 0
    table_rows_total: int = 0
    table_eta_s: float | None = None

    def as_metadata(self) -> dict:
        return {
            "partition": self.partition, "rows_changed": self.rows, "batches": self.batches,
            "rows_done": self.rows_done, "rows_total_estimate": self.rows_total,
            "rows_per_s": round(self.rows_per_s, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "batch_size": self.batch_size, "batch_ms": round(self.batch_ms, 1),
            "paused_s": round(self.paused_s, 3), "pause_reason": self.pause_reason,
            "retries": self.retries, "table": self.table,
            "table_rows_done": self.table_rows_done,
            "table_rows_total_estimate": self.table_rows_total,
            "table_eta_s": None if self.table_eta_s is None else round(self.table_eta_s, 1),
            "elapsed_s": round(self.elapsed_s, 3), "done": self.done,
        }


def progress_line(p: BatchProgress) -> str:
    """One log line: what the CLI prints per batch."""
    eta = "" if p.eta_s is None else f", ETA {_duration(p.eta_s)}"
    table = ""
    if p.table_rows_total:
        pct = 100.0 * min(p.table_rows_done, p.table_rows_total) / p.table_rows_total
        t_eta = "" if p.table_eta_s is None else f", ETA {_duration(p.table_eta_s)}"
        table = f"; {p.table} ~{pct:.0f}% ({p.table_rows_done:,}/~{p.table_rows_total:,}{t_eta})"
    paused = f"; paused {p.paused_s:.1f}s: {p.pause_reason}" if p.pause_reason else ""
    return (
        f"backfill {p.partition}: {p.rows_done:,}/~{p.rows_total:,} rows, {p.rows:,} changed, "
        f"{p.rows_per_s:,.0f} rows/s, batch {p.batch_size:,} in {p.batch_ms:.0f} ms{eta}"
        f"{table}{paused}{' (done)' if p.done else ''}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


@dataclass
class PartitionResult:
    partition: str
    rows: int
    batches: int
    elapsed_s: float
    retries: int
    already_done: bool = False
    sample_sql: str = ""
    rows_scanned: int = 0
    paused_s: float = 0.0
    pauses: dict[str, float] = field(default_factory=dict)
    cancelled_batches: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


def progress_logger(log: Callable[[str], None], every_s: float = 2.0) -> Callable[[BatchProgress], None]:
    """An on_batch that logs a progress_line at most every `every_s`, and always the last one
    and every pause of a second or more (a long transaction, a lagging replica)."""
    last = [0.0]

    def on_batch(p: BatchProgress) -> None:
        now = time.monotonic()
        if p.done or p.paused_s >= 1.0 or now - last[0] >= every_s:
            last[0] = now
            log(progress_line(p))

    return on_batch


def throttle_for(settings: object, database_url: str | None) -> Throttle:
    """The throttle a migration's `settings:` ask for, watching batches from `database_url`."""
    return Throttle(ThrottleSettings.from_settings(settings), database_url)


# Kept for callers that pass a plain function: called before every batch.
PlainThrottle = Callable[[psycopg.Connection], None]


def no_throttle(conn: psycopg.Connection) -> None:
    return None


# -- running one partition ------------------------------------------------------------------------
def run_partition(
    conn: psycopg.Connection,
    migration: str,
    partition: str,
    tasks: list[BackfillTask],
    batch_size: int,
    lock_timeout_ms: int = 500,
    throttle: Throttle | PlainThrottle | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> PartitionResult:
    """Run the partition's remaining batches; returns at once when it is already done.

    `throttle` (throttle.Throttle) decides pauses between batches, how many batches run at once
    (each on its own connection; `conn` itself plans them and reads the pause conditions), and
    may cancel and shrink a batch clients wait on; `batch_size` is the largest batch.
    `on_batch` receives a BatchProgress after every committed batch and now and then while
    paused.
    """
    row = conn.execute(
        f"""SELECT task_index, lower_key, upper_key, position_key, done
            FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s AND partition_key = %s""",
        (migration, partition),
    ).fetchone()
    if row is None:
        raise KeyError(f"partition {partition!r} of migration {migration!r} is not planned")
    t_index, lower, upper, position, done = row
    if done:
        return PartitionResult(partition, 0, 0, 0.0, 0, already_done=True)
    started = time.monotonic()
    lower, upper = _as_list(lower), _as_list(upper)
    position = _as_list(position) if position is not None else lower
    task = tasks[t_index]
    spec = key_spec(conn, task.range_table)
    gate = as_throttle(throttle)
    progress = _Progress(conn, migration, partition, task, spec, lower, upper, position, on_batch)
    result = PartitionResult(partition, 0, 0, 0.0, 0)
    ledger = _Ledger(migration, partition)
    pool = _Workers(conn, gate, lock_timeout_ms, ledger, task.own_trigger)
    top = max(1, int(batch_size))
    size = gate.first_size(top)
    planned_to, all_planned = position, False
    redo: list[_Range] = []
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
                    end, count, more = _batch_end(
                        conn, task.range_table, spec, planned_to, upper, size)
                    rng = _Range(planned_to, end if more else upper, count, not more)
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


@dataclass(eq=False)
class _Range:
    """Keys (lower, upper] of one batch; upper None only for the last range of the last
    partition."""

    lower: list[str] | None
    upper: list[str] | None
    keys: int
    last: bool
    committed: bool = False


@dataclass
class _Done:
    rng: _Range
    changed: int | None  # None: the throttle cancelled the batch
    seen: BatchWatch
    retries: int
    seconds: float
    error: BaseException | None = None


class _Ledger:
    """Which ranges of the partition have committed, and how far the saved position may go.

    The saved position means "every key up to here is done".  Batches running at once may
    commit out of order, so a batch moves it only over the gap-free run of committed ranges
    that follows it, in the batch's own transaction; `lock` is held from that state write to the
    commit, so state writes happen one at a time and the position never moves back.  A kill
    loses at most the batches committed beyond the saved position; they run again, changing
    nothing."""

    def __init__(self, migration: str, partition: str):
        self.migration, self.partition = migration, partition
        self.lock = threading.Lock()
        self._ranges: list[_Range] = []  # planned, in key order
        self._saved = 0  # ranges[:_saved] are inside the saved position

    def add(self, rng: _Range) -> None:
        self._ranges.append(rng)

    def order(self, rng: _Range) -> int:
        return next(i for i, r in enumerate(self._ranges) if r is rng)

    def save_sql(self, conn: psycopg.Connection, rng: _Range, changed: int) -> int | None:
        """Under `lock`, inside the batch's transaction: record its rows and move the saved
        position as far as its commit allows.  Returns the new saved count of ranges."""
        i = self._saved
        while i < len(self._ranges) and (self._ranges[i] is rng or self._ranges[i].committed):
            i += 1
        if i == self._saved:  # an earlier range is still running: rows only
            conn.execute(
                f"""UPDATE {STATE_SCHEMA}.backfill_ranges SET rows_done = rows_done + %s,
                      updated_at = now() WHERE migration = %s AND partition_key = %s""",
                (changed, self.migration, self.partition))
            return None
        end = self._ranges[i - 1]
        conn.execute(
            f"""UPDATE {STATE_SCHEMA}.backfill_ranges SET position_key = %s,
                  rows_done = rows_done + %s, done = %s, updated_at = now()
                WHERE migration = %s AND partition_key = %s""",
            (_json(end.upper), changed, end.last, self.migration, self.partition))
        return i

    def committed(self, rng: _Range, saved: int | None) -> None:
        rng.committed = True
        if saved is not None:
            self._saved = saved

    def all_saved(self) -> bool:
        return bool(self._ranges) and self._saved == len(self._ranges) and self._ranges[-1].last


class _Workers:
    """Runs batches: on the planning connection itself when the throttle allows only one at a
    time (no way to connect), else each on a worker connection of its own, in threads."""

    def __init__(self, conn: psycopg.Connection, gate: Throttle, lock_timeout_ms: int,
                 ledger: _Ledger, own_trigger: str | None = None):
        self.conn, self.gate, self.ledger = conn, gate, ledger
        self.lock_timeout_ms = lock_timeout_ms
        self.own_trigger = own_trigger
        self.threaded = gate.settings.max_workers > 1 and gate.can_connect
        self.running = 0
        self._done: queue.Queue[_Done] = queue.Queue()
        self._idle: list[psycopg.Connection] = []
        self._all: list[psycopg.Connection] = []

    def submit(self, rng: _Range, statement: str) -> None:
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

    def _thread(self, conn: psycopg.Connection, rng: _Range, statement: str) -> None:
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

    def _run(self, conn: psycopg.Connection, rng: _Range, statement: str) -> _Done:
        """One batch and its state write, in one transaction.  Lock timeouts and deadlocks are
        retried with backoff: the batch gives way, never the client."""
        retries = 0
        started = time.monotonic()
        while True:
            with self.gate.watch(conn) as seen:
                locked = False
                try:
                    with conn.transaction():
                        conn.execute(_batch_settings(self.lock_timeout_ms, self.own_trigger))
                        changed = max(conn.execute(statement).rowcount, 0)
                        self.ledger.lock.acquire()
                        locked = True
                        saved = self.ledger.save_sql(conn, rng, changed)
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


def _batch_settings(lock_timeout_ms: int, own_trigger: str | None) -> str:
    # One round trip. synchronous_commit off: a batch lost in a crash is lost with its saved
    # position and runs again.  mark_backfill_of: the task's own sync trigger skips the batch.
    return (f"SET LOCAL synchronous_commit = off; {mark_backfill_of(own_trigger)}; "
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")


def _batch_end(
    conn: psycopg.Connection, table: TableName, spec: KeySpec,
    position: list[str] | None, upper: list[str] | None, batch_size: int,
) -> tuple[list[str] | None, int, bool]:
    """(last key of the next batch, keys in it, whether keys remain after it) for the range
    (position, upper]; (None, 0, False) when it is empty.  Looks one key past the batch, so a
    range ending exactly on a batch boundary takes no extra, empty batch."""
    cols = spec.cols(_T)
    inner = ", ".join(f"{c} AS k{i}" for i, c in enumerate(cols))
    ks = [f"b.k{i}" for i in range(len(cols))]
    rows = conn.execute(
        f"SELECT {', '.join(k + '::text' for k in ks)}, count(*) OVER () FROM ("
        f"SELECT {inner} FROM {table.sql} AS {_T} WHERE {spec.range_sql(position, upper, _T)} "
        f"ORDER BY {', '.join(cols)} LIMIT {int(batch_size) + 1}) b "
        f"ORDER BY {', '.join(k + ' DESC' for k in ks)} LIMIT 2"
    ).fetchall()
    if not rows:
        return None, 0, False
    total = int(rows[0][-1])
    if total <= batch_size:
        return list(rows[0][:-1]), total, False
    return list(rows[1][:-1]), batch_size, True


class _Progress:
    """Rows done / total for one partition and its table, rows/s and ETA."""

    def __init__(self, conn, migration, partition, task, spec, lower, upper, position, on_batch):
        self.partition, self.on_batch = partition, on_batch
        self.table = str(task.range_table)
        # One count over the partition's key range (index-only when the visibility map allows):
        # an exact total, and how far an earlier, killed run got.
        before = (
            f"count(*) FILTER (WHERE {spec.range_sql(None, position, _T)})"
            if position is not None and position != lower else "0"
        )
        total, done = conn.execute(
            f"SELECT count(*), {before} FROM {task.range_table.sql} AS {_T} "
            f"WHERE {spec.range_sql(lower, upper, _T)}"
        ).fetchone()
        self.total, self.done, self.done_at_start = int(total), int(done), int(done)
        self.table_total = _table_rows_estimate(conn, migration, task.range_table)
        # the table's other partitions already done count the rows they changed
        self.others_done = int(conn.execute(
            f"""SELECT coalesce(sum(rows_done) FILTER (WHERE done), 0)
                FROM {STATE_SCHEMA}.backfill_ranges
                WHERE migration = %s AND partition_key <> %s AND task_index = (
                    SELECT task_index FROM {STATE_SCHEMA}.backfill_ranges
                    WHERE migration = %s AND partition_key = %s)""",
            (migration, partition, migration, partition),
        ).fetchone()[0])

    def advance(self, keys: int) -> None:
        self.done += keys
        self.total = max(self.total, self.done)

    def report(self, result: PartitionResult, started: float, size: int, batch_ms: float,
               done: bool, pause: Pause) -> None:
        if self.on_batch is None:
            return
        elapsed = time.monotonic() - started
        rate = (self.done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        eta = 0.0 if done else (max(self.total - self.done, 0) / rate if rate > 0 else None)
        table_done = self.others_done + self.done
        table_total = max(self.table_total, table_done)
        table_eta = (table_total - table_done) / rate if rate > 0 else None
        self.on_batch(BatchProgress(
            self.partition, result.rows, result.batches, elapsed, done, self.done, self.total,
            rate, eta, size, batch_ms, pause.seconds, pause.reason if pause.seconds else "",
            result.retries, self.table, table_done, table_total, table_eta,
        ))


def _table_rows_estimate(conn: psycopg.Connection, migration: str, table: TableName) -> int:
    """The backup's exact row count when the migration backed the table up, else the planner's
    estimate (reltuples), else 0."""
    row = conn.execute(
        f"""SELECT row_count FROM {STATE_SCHEMA}.backups
            WHERE migration = %s AND source_schema = %s AND source_table = %s""",
        (migration, table.schema, table.name),
    ).fetchone() if _has_backups_table(conn) else None
    if row is not None:
        return int(row[0])
    est = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (table.sql,)
    ).fetchone()
    return max(int(est[0]), 0) if est and est[0] is not None else 0


def _has_backups_table(conn: psycopg.Connection) -> bool:
    return conn.execute(f"SELECT to_regclass('{STATE_SCHEMA}.backups') IS NOT NULL").fetchone()[0]


def partitions_status(conn: psycopg.Connection, migration: str) -> list[tuple[str, bool, int]]:
    from ..state import state_exists

    if not state_exists(conn):
        return []
    return [
        (k, d, n)
        for k, d, n in conn.execute(
            f"""SELECT partition_key, done, rows_done FROM {STATE_SCHEMA}.backfill_ranges
                WHERE migration = %s ORDER BY partition_key""",
            (migration,),
        )
    ]


def forget_partitions(conn: psycopg.Connection, migration: str) -> None:
    conn.execute(f"DELETE FROM {STATE_SCHEMA}.backfill_ranges WHERE migration = %s", (migration,))


__all__ = [
    "BatchProgress", "KeySpec", "PartitionResult", "key_spec", "no_throttle",
    "partitions_status", "plan_partitions", "progress_line", "run_partition",
]
