"""Throttle: when a backfill may run its next batch, how big it may be, how many at once.

A backfill shares the database with its clients. These rules keep it from hurting them:

- a fixed pause between batches (`batch_pause_ms`);
- pacing by measured client activity: a watcher on its own connection samples pg_stat_activity
  every 10 ms while batches run.  While other sessions of the database are busy, one batch runs
  at a time, sized to take about `busy_batch_ms` (a client whose row a batch holds waits about
  that long at most), and the backfill runs only `busy_duty` of the time (after a 10 ms batch it
  sleeps 10 ms at 0.5), so it takes at most about half a core from them.  While nobody else is
  busy, batches grow to the migration's `batch_size` and `max_workers` of them run at once;
- no client waits long on a batch: a session blocked by a backfill session (pg_blocking_pids)
  for `max_client_wait_ms` gets the batch cancelled (rolled back, nothing kept: batches are
  idempotent); the backfill lets the clients through, then does that range again, smaller;
- a pause while other sessions wait on locks held by the backfill session (advisory locks
  aside), while a transaction older than `max_transaction_age_s` is open in the database (the
  dead rows the backfill leaves cannot be vacuumed until it ends), and while a replica replays
  more than `max_replication_lag_s` behind (pg_stat_replication; no replica means no lag).

Sessions named `migration-dags ...` (the tool's own) are never counted as clients.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import psycopg

from ..db import connect as runtime_connect

OWN_SESSIONS = "migration-dags%"


@dataclass(frozen=True)
class ThrottleSettings:
    batch_pause_ms: int = 0
    # a client blocked this long by a batch gets the batch cancelled; 0: never cancel
    max_client_wait_ms: int = 25
    # while clients are busy: batch duration to aim at, and share of the time the backfill runs
    busy_batch_ms: int = 10
    busy_duty: float = 0.5
    # pause while a transaction older than this is open in the database; 0: no limit
    max_transaction_age_s: float = 300.0
    # pause while a replica replays more than this far behind; 0: no limit
    max_replication_lag_s: float = 30.0
    min_batch_size: int = 100
    # batches running at once (each on its own connection) while no client is busy; one while
    # clients are.  Needs a way to connect (Throttle's `connect`); without one, always one.
    max_workers: int = 2
    # how often the pause conditions are read between batches, and while paused
    check_interval_s: float = 0.5
    # how often the watcher samples sessions while a batch runs (and 5x slower otherwise)
    watch_interval_s: float = 0.01
    # clients count as busy when seen in this last stretch of time
    busy_window_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: object) -> "ThrottleSettings":
        """From a migration's `settings:` (spec.MigrationSettings); absent fields keep defaults."""
        d = cls()
        names = ("batch_pause_ms", "max_client_wait_ms", "max_transaction_age_s",
                 "max_replication_lag_s")
        return cls(**{n: type(getattr(d, n))(getattr(settings, n, getattr(d, n))) for n in names})


@dataclass
class Pause:
    """Time slept before one batch, by kind of reason, and the last reason in words."""

    seconds: float = 0.0
    by_reason: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    @property
    def reason(self) -> str:
        """Why it paused, when it was for more than the routine pause and pacing."""
        return self.detail

    def add(self, kind: str, seconds: float, detail: str = "") -> None:
        self.seconds += seconds
        self.by_reason[kind] = self.by_reason.get(kind, 0.0) + seconds
        if detail:
            self.detail = detail


@dataclass
class BatchWatch:
    """What the watcher saw while one batch ran."""

    cancelled: bool = False
    waiters: int = 0          # most sessions seen blocked by the batch at once
    max_wait_ms: float = 0.0  # longest wait seen


# -- SQL --------------------------------------------------------------------------------------
# One sample: a first row (NULL, busy client sessions, NULL), then per backfill session in
# %(pids)s that blocks others: (its pid, sessions it blocks, their longest wait in ms).
SAMPLE_SQL = """
WITH s AS (
  SELECT pid, wait_event_type, wait_event, state, application_name, query_start
  FROM pg_stat_activity
  WHERE datname = current_database() AND backend_type = 'client backend'
    AND pid <> pg_backend_pid()
), w AS (
  SELECT unnest(pg_blocking_pids(pid)) AS blocker,
         extract(epoch FROM clock_timestamp() - query_start)::float8 * 1000 AS waited_ms
  FROM s WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'
)
SELECT NULL::int, (SELECT count(*) FROM s WHERE state <> 'idle'
                   AND application_name NOT LIKE %(own)s AND NOT (pid = ANY(%(pids)s))), NULL::float8
UNION ALL
SELECT blocker, count(*), max(waited_ms) FROM w WHERE blocker = ANY(%(pids)s) GROUP BY blocker
"""

LONG_TRANSACTION_SQL = """
SELECT pid, coalesce(nullif(application_name, ''), usename, '?'),
       extract(epoch FROM clock_timestamp() - xact_start)::float8
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
  AND backend_type = 'client backend' AND application_name NOT LIKE %(own)s
  AND xact_start < clock_timestamp() - make_interval(secs => %(limit)s)
ORDER BY xact_start LIMIT 1
"""

REPLICATION_LAG_SQL = """
SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)::float8,
       count(*)
FROM pg_stat_replication
"""


class _Watcher:
    """A thread sampling pg_stat_activity on its own connection: client activity always, and
    the sessions running batches block (cancelling a batch when one waits too long)."""

    def __init__(self, conn: psycopg.Connection, settings: ThrottleSettings):
        self.conn = conn
        self.settings = settings
        self.batches: dict[int, BatchWatch] = {}  # backfill session pid -> its running batch
        self.last_busy = -1e9   # monotonic time clients were last seen busy
        self.samples = 0
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backfill-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        s = self.settings
        try:
            while not self._stop.is_set():
                with self._guard:
                    watched = dict(self.batches)
                rows = self.conn.execute(
                    SAMPLE_SQL, {"pids": list(watched), "own": OWN_SESSIONS}).fetchall()
                self.samples += 1
                if rows[0][1]:
                    self.last_busy = time.monotonic()
                for pid, blocked, waited_ms in rows[1:]:
                    self._seen(pid, watched.get(pid), int(blocked), float(waited_ms))
                interval = s.watch_interval_s if watched else s.watch_interval_s * 5
                self._wake.wait(interval)
                self._wake.clear()
        except psycopg.Error:
            pass  # a watcher that cannot watch leaves the batches alone

    def _seen(self, pid: int, batch: BatchWatch | None, blocked: int, waited_ms: float) -> None:
        if batch is None:
            return
        batch.waiters = max(batch.waiters, blocked)
        batch.max_wait_ms = max(batch.max_wait_ms, waited_ms)
        limit = self.settings.max_client_wait_ms
        if limit > 0 and waited_ms >= limit and not batch.cancelled:
            with self._guard:
                if self.batches.get(pid) is batch:  # still the same batch: cancel it
                    batch.cancelled = True
                    self.conn.execute("SELECT pg_cancel_backend(%s)", (pid,))

    def begin(self, pid: int, batch: BatchWatch) -> None:
        with self._guard:
            self.batches[pid] = batch
        self._wake.set()

    def end(self, pid: int) -> None:
        # Under the guard: once this returns, no cancel can reach that session for this batch.
        with self._guard:
            self.batches.pop(pid, None)

    def wait_first_sample(self, timeout: float = 1.0) -> None:
        until = time.monotonic() + timeout
        while self.samples == 0 and self._thread.is_alive() and time.monotonic() < until:
            time.sleep(0.002)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.conn.close()


class Throttle:
    """Pauses, batch sizes and concurrency for one run of a backfill partition.

    `connect` (the database URL, or a function of a purpose string returning an autocommit
    connection to that database) opens the watcher's and the batch workers' connections;
    without it there is no pacing by client activity, no cancelling and one batch at a time.
    `sleep` is injectable for tests.  `watch` is called from the batch threads; everything else
    from the one thread that plans the batches.
    """

    def __init__(
        self,
        settings: ThrottleSettings = ThrottleSettings(),
        connect: Callable[[str], psycopg.Connection] | str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.settings = settings
        if isinstance(connect, str):
            url = connect
            connect = lambda purpose: runtime_connect(  # noqa: E731
                url, f"migration-dags backfill {purpose}")
        self._connect = connect
        self._sleep = sleep
        self._watcher: _Watcher | None = None
        self._last_check = -1e9
        self._rate = 0.0  # rows/s of recent batches

    # -- client activity -----------------------------------------------------------------------
    def _watch(self) -> _Watcher | None:
        if self._connect is None:
            return None
        if self._watcher is None:
            self._watcher = _Watcher(self._connect("watcher"), self.settings)
            self._watcher.wait_first_sample()
        return self._watcher

    @property
    def can_connect(self) -> bool:
        return self._connect is not None

    def workers(self) -> int:
        """Batches that may run at once now: max_workers while no client is busy, else one."""
        if self._connect is None or self.settings.max_workers <= 1:
            return 1
        return 1 if self.clients_busy() else self.settings.max_workers

    def open_worker(self) -> psycopg.Connection:
        """A connection for one more batch worker (autocommit, named as the tool's own)."""
        return self._connect("worker")

    def clients_busy(self) -> bool:
        w = self._watch()
        return w is not None and time.monotonic() - w.last_busy < self.settings.busy_window_s

    # -- between batches ---------------------------------------------------------------------
    def conditions(self, conn: psycopg.Connection) -> list[tuple[str, str]]:
        """Reasons to pause right now, as (kind, words); empty: go on."""
        s = self.settings
        reasons = []
        if s.max_transaction_age_s > 0:
            row = conn.execute(LONG_TRANSACTION_SQL, {"limit": s.max_transaction_age_s,
                                                      "own": OWN_SESSIONS}).fetchone()
            if row is not None:
                pid, app, age = row
                reasons.append(("long transaction", f"transaction of pid {pid} ({app}) open "
                                f"{age:.0f} s, over the {s.max_transaction_age_s:g} s limit"))
        if s.max_replication_lag_s > 0:
            lag, _replicas = conn.execute(REPLICATION_LAG_SQL).fetchone()
            if lag > s.max_replication_lag_s:
                reasons.append(("replication lag", f"replication lag {lag:.1f} s, over the "
                                f"{s.max_replication_lag_s:g} s limit"))
        return reasons

    def before_batch(
        self, conn: psycopg.Connection, last_batch_s: float = 0.0, waited: BatchWatch | None = None,
        report: Callable[[Pause], None] | None = None,
    ) -> Pause:
        """Sleep as long as the rules say; returns how long and why.  `waited` is what the
        watcher saw during the last batch: when sessions waited on its locks, they get through
        first.  `report` is called now and then while a condition holds, so a long pause shows
        in the progress."""
        s = self.settings
        pause = Pause()
        if s.batch_pause_ms > 0:
            self._sleep(s.batch_pause_ms / 1000)
            pause.add("batch_pause_ms", s.batch_pause_ms / 1000)
        if waited is not None and (waited.cancelled or waited.waiters):
            wait = max(s.max_client_wait_ms, 20) / 1000
            self._sleep(wait)
            pause.add("lock waiters", wait, (
                f"{waited.waiters} session(s) waited {waited.max_wait_ms:.0f} ms on a batch's "
                + ("rows: cancelled it, doing it again smaller" if waited.cancelled else "rows")))
        elif last_batch_s > 0 and 0 < s.busy_duty < 1 and self.clients_busy():
            wait = last_batch_s * (1 / s.busy_duty - 1)
            self._sleep(wait)
            pause.add("pacing", wait)
        now = time.monotonic()
        if now - self._last_check < s.check_interval_s:
            return pause
        self._last_check = now
        checks = 0
        while True:
            reasons = self.conditions(conn)
            if not reasons:
                return pause
            started = time.monotonic()
            self._sleep(s.check_interval_s)
            pause.add(reasons[0][0], time.monotonic() - started,
                      "; ".join(words for _kind, words in reasons))
            checks += 1
            if report is not None and checks % 4 == 1:
                report(pause)

    # -- during a batch ----------------------------------------------------------------------
    @contextmanager
    def watch(self, conn: psycopg.Connection) -> Iterator[BatchWatch]:
        """Watch the batch running on `conn`; cancel it when a client waited on it too long."""
        seen = BatchWatch()
        w = self._watch()
        if w is None:
            yield seen
            return
        pid = conn.info.backend_pid
        w.begin(pid, seen)
        try:
            yield seen
        finally:
            w.end(pid)

    def next_size(self, size: int, rows: int, batch_s: float, seen: BatchWatch, top: int) -> int:
        """The next batch's size, at most `top`: half after a cancel; about busy_batch_ms of
        work while clients are busy; otherwise growing by half."""
        s = self.settings
        floor = min(s.min_batch_size, top)
        if rows > 0 and batch_s > 0:
            rate = rows / batch_s
            self._rate = rate if self._rate == 0 else 0.7 * self._rate + 0.3 * rate
        if seen.cancelled:
            return max(floor, size // 2)
        if self.clients_busy() and self._rate > 0:
            return max(floor, min(top, int(self._rate * s.busy_batch_ms / 1000)))
        return max(floor, min(top, int(size * 1.5) + 1))

    def first_size(self, top: int) -> int:
        """While clients are busy, start small and let next_size find the size."""
        if self.clients_busy():
            return max(min(self.settings.min_batch_size, top), min(top, 1000))
        return top

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def __enter__(self) -> "Throttle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# No pause, no pacing, no cancelling: a run_partition called without a throttle.
OFF = ThrottleSettings(max_client_wait_ms=0, busy_duty=1.0, max_transaction_age_s=0,
                       max_replication_lag_s=0)


def as_throttle(value: Throttle | None) -> Throttle:
    if value is None:
        return Throttle(OFF)
    if isinstance(value, Throttle):
        return value
    raise TypeError(f"not a throttle: {value!r}")


def throttle_for(settings: object, database_url: str | None) -> Throttle:
    """The throttle a migration's `settings:` ask for, watching batches from `database_url`."""
    return Throttle(ThrottleSettings.from_settings(settings), database_url)
