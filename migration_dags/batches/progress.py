"""What a running partition reports: rows done of the partition and of its table, rate, ETA.

`run_partition` sends a BatchProgress to `on_batch` after every committed batch and now and then
while paused; `progress_logger` turns those into log lines; PartitionResult sums up a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import psycopg

from .. import state
from ..identifiers import TableName
from ..operations.base import BackfillTask
from .planner import TABLE_ALIAS as _T
from .planner import KeySpec
from .throttle import Pause


@dataclass
class BatchProgress:
    """Sent to `on_batch` after every committed batch (and while paused).

    `rows` counts rows this run changed; `rows_done`/`rows_total` count keys of the partition
    passed so far / in all (taken when the run started, plus rows inserted since: counted for a
    small range, the planner's estimate for a large one);
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

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


def progress_logger(log: Callable[[str], None], every_s: float = 5.0) -> Callable[[BatchProgress], None]:
    """An on_batch that logs a progress_line at most every `every_s` (into the run's logs), and
    always the last one and every pause of a second or more (a long transaction, a lagging
    replica)."""
    last = [0.0]

    def on_batch(p: BatchProgress) -> None:
        now = time.monotonic()
        if p.done or p.paused_s >= 1.0 or now - last[0] >= every_s:
            last[0] = now
            log(progress_line(p))

    return on_batch


def progress_bar(p: BatchProgress, width: int = 30) -> str:
    """One line for a terminal: the table's rows done, rate and ETA."""
    total, done = (p.table_rows_total, p.table_rows_done) if p.table_rows_total else (
        p.rows_total, p.rows_done)
    frac = min(done / total, 1.0) if total else (1.0 if p.done else 0.0)
    filled = int(frac * width)
    eta = p.table_eta_s if p.table_rows_total else p.eta_s
    tail = "" if eta is None else f" ETA {_duration(eta)}"
    paused = f" paused: {p.pause_reason}" if p.pause_reason else ""
    return (f"backfill {p.table or p.partition} [{'#' * filled}{'.' * (width - filled)}] "
            f"{100 * frac:3.0f}% {done:,}/~{total:,} rows {p.rows_per_s:,.0f} rows/s{tail}{paused}")


def terminal_progress(stream=None, every_s: float = 5.0) -> Callable[[BatchProgress], None]:
    """An on_batch for the person running the CLI: on a terminal a bar redrawn in place (at most
    10 times a second), otherwise a plain progress_line every `every_s` and at the end."""
    import sys

    out = sys.stderr if stream is None else stream
    tty = bool(getattr(out, "isatty", lambda: False)())
    last = [-1e9]  # the first report shows at once

    def on_batch(p: BatchProgress) -> None:
        now = time.monotonic()
        if tty:
            if p.done or now - last[0] >= 0.1:
                last[0] = now
                out.write("\r\x1b[Kmigration-dags: " + progress_bar(p) + ("\n" if p.done else ""))
                out.flush()
        elif p.done or p.paused_s >= 1.0 or now - last[0] >= every_s:
            last[0] = now
            out.write(f"migration-dags: {progress_line(p)}\n")
            out.flush()

    return on_batch


def both(*callbacks: Callable[[BatchProgress], None] | None) -> Callable[[BatchProgress], None]:
    chosen = [c for c in callbacks if c is not None]

    def on_batch(p: BatchProgress) -> None:
        for c in chosen:
            c(p)

    return on_batch


class PartitionProgress:
    """Rows done / total for one partition and its table, rows/s and ETA."""

    def __init__(self, conn: psycopg.Connection, migration: str, partition: str,
                 task: BackfillTask, spec: KeySpec, lower: list[str] | None,
                 upper: list[str] | None, position: list[str] | None,
                 on_batch: Callable[[BatchProgress], None] | None):
        self.partition, self.on_batch = partition, on_batch
        self.table = str(task.range_table)
        # Rows of the range and, on a resume, before the saved position: counted when the
        # planner expects few, else its estimate (counting cost 40-70 ms per 250k-row partition
        # before its first batch; the totals are shown as estimates, "~", anyway).
        total = count_rows(conn, task.range_table, spec.range_sql(lower, upper, _T))
        done = (count_rows(conn, task.range_table, spec.range_sql(lower, position, _T))
                if position is not None and position != lower else 0)
        self.total, self.done, self.done_at_start = int(total), int(done), int(done)
        self.table_total = _table_rows_estimate(conn, migration, task.range_table)
        # the table's other partitions already done count the rows they changed
        self.others_done = state.rows_done_in_other_ranges(conn, migration, partition)

    def advance(self, keys: int) -> None:
        self.done += keys
        self.total = max(self.total, self.done)

    def report(self, result: PartitionResult, started: float, size: int, batch_ms: float,
               done: bool, pause: Pause) -> None:
        if done:  # the estimate gives way to what the partition turned out to hold
            self.total = self.done
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


# Up to this many rows (by the planner's estimate) a range's rows are counted, not estimated.
COUNT_EXACTLY_UP_TO = 50_000


def count_rows(conn: psycopg.Connection, table: TableName, where: str) -> int:
    """The rows of `table` (aliased mdg_t) matching `where`: the planner's estimate, or an exact
    count when that is at most COUNT_EXACTLY_UP_TO."""
    query = f"SELECT 1 FROM {table.sql} AS {_T} WHERE {where}"
    estimate = int(conn.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone()[0][0]["Plan"]["Plan Rows"])
    if estimate > COUNT_EXACTLY_UP_TO:
        return estimate
    return int(conn.execute(f"SELECT count(*) FROM ({query}) AS mdg_rows").fetchone()[0])


def _table_rows_estimate(conn: psycopg.Connection, migration: str, table: TableName) -> int:
    """The backup's exact row count when the migration backed the table up, else the planner's
    estimate (reltuples), else 0."""
    backed_up = state.backup_row_count(conn, migration, table)
    if backed_up is not None:
        return backed_up
    est = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (table.sql,)
    ).fetchone()
    return max(int(est[0]), 0) if est and est[0] is not None else 0
