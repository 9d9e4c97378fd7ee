"""Throttle: when a backfill pauses, and why.  It reacts to signals, it does not pace.

Batches are small (about 2,000 keys, ~10 ms) and commit asynchronously, and each waits at most
its own short lock_timeout on a client's lock (runner.py): a client waits on a batch's rows at most
one batch, and a batch never queues clients behind itself for long.  That is what keeps clients'
latency low (bench/backfill_bench.py); measured, pacing, polling pg_stat_activity every batch and
cancelling batches cost more than they protected.  What is left here are the signals that a
small batch cannot fix, read at most every `check_interval_s`, never every batch:

- clients waiting on the batch's locks longer than `max_client_wait_ms` (sampled inside a batch,
  before its commit, when a check is due: the only moment the backfill holds row locks): the
  backfill sleeps as long as that batch took, so the clients get through first;
- a transaction older than `max_transaction_age_s` is open in the database (the dead rows the
  backfill leaves cannot be vacuumed until it ends): pause until it ends;
- a replica replays more than `max_replication_lag_s` behind (pg_stat_replication; no replica
  means no lag): pause until it catches up;
- and an optional fixed pause between batches (`batch_pause_ms`, 0 by default).

Sessions named `migration-dags ...` (the tool's own) are never counted as clients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import psycopg

OWN_SESSIONS = "migration-dags%"


@dataclass(frozen=True)
class ThrottleSettings:
    batch_pause_ms: int = 0
    # clients that waited on a batch's locks this long make the backfill step aside; 0: never
    max_client_wait_ms: int = 25
    # pause while a transaction older than this is open in the database; 0: no limit
    max_transaction_age_s: float = 300.0
    # pause while a replica replays more than this far behind; 0: no limit
    max_replication_lag_s: float = 30.0
    # how often the signals are read (during a batch, and while paused)
    check_interval_s: float = 1.0

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
        return self.detail

    def add(self, kind: str, seconds: float, detail: str = "") -> None:
        self.seconds += seconds
        self.by_reason[kind] = self.by_reason.get(kind, 0.0) + seconds
        if detail:
            self.detail = detail


# -- SQL: one round trip reads every signal ------------------------------------------------------
SIGNALS_SQL = """
SELECT
  (SELECT count(*) FROM pg_stat_activity
   WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'
     AND pg_backend_pid() = ANY(pg_blocking_pids(pid))),
  (SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)::float8 * 1000
   FROM pg_stat_activity
   WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory'
     AND pg_backend_pid() = ANY(pg_blocking_pids(pid))),
  (SELECT coalesce(max(extract(epoch FROM greatest(write_lag, flush_lag, replay_lag))), 0)::float8
   FROM pg_stat_replication),
  (SELECT array[pid::text, coalesce(nullif(application_name, ''), usename, '?'),
                extract(epoch FROM clock_timestamp() - xact_start)::float8::text]
   FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
     AND backend_type = 'client backend' AND application_name NOT LIKE %(own)s
     AND %(age)s > 0 AND xact_start < clock_timestamp() - make_interval(secs => %(age)s)
   ORDER BY xact_start LIMIT 1)
"""


class Throttle:
    """The pauses of one backfill run.  `sleep` and `clock` are injectable for tests."""

    def __init__(
        self, settings: ThrottleSettings = ThrottleSettings(),
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._sleep, self._clock = sleep, clock
        self._last_check = -1e9
        self._pending: list[tuple[str, str]] = []  # reasons seen by the last sample
        self.checks = 0  # signal reads, for tests: never one per batch

    def due(self) -> bool:
        return self._clock() - self._last_check >= self.settings.check_interval_s

    def conditions(self, conn: psycopg.Connection) -> list[tuple[str, str]]:
        """Reasons to pause right now, as (kind, words); empty: go on.  Inside a batch's
        transaction this also sees clients waiting on that batch."""
        s = self.settings
        self._last_check = self._clock()
        self.checks += 1
        waiters, waited_ms, lag, old = conn.execute(
            SIGNALS_SQL, {"own": OWN_SESSIONS, "age": float(s.max_transaction_age_s)}).fetchone()
        reasons = []
        if s.max_client_wait_ms > 0 and waiters and waited_ms >= s.max_client_wait_ms:
            reasons.append(("lock waiters", f"{waiters} session(s) waited {waited_ms:.0f} ms on a "
                            "batch's rows"))
        if old is not None:
            pid, app, age = old
            reasons.append(("long transaction", f"transaction of pid {pid} ({app}) open "
                            f"{float(age):.0f} s, over the {s.max_transaction_age_s:g} s limit"))
        if s.max_replication_lag_s > 0 and lag > s.max_replication_lag_s:
            reasons.append(("replication lag", f"replication lag {lag:.1f} s, over the "
                            f"{s.max_replication_lag_s:g} s limit"))
        return reasons

    def sample(self, conn: psycopg.Connection) -> None:
        """Inside a batch, before its commit, when a check is due: remember what to react to."""
        if self.due():
            self._pending = self.conditions(conn)

    def before_batch(
        self, conn: psycopg.Connection, last_batch_s: float = 0.0,
        report: Callable[[Pause], None] | None = None,
    ) -> Pause:
        """Sleep as long as the signals say; returns how long and why.  Costs nothing (no query)
        unless the last sample found a reason."""
        s = self.settings
        pause = Pause()
        if s.batch_pause_ms > 0:
            self._sleep(s.batch_pause_ms / 1000)
            pause.add("batch_pause_ms", s.batch_pause_ms / 1000)
        reasons, self._pending = self._pending, []
        checks = 0
        while reasons:
            kinds = {kind for kind, _words in reasons}
            words = "; ".join(w for _k, w in reasons)
            if kinds == {"lock waiters"}:  # they get through while the backfill sleeps one batch
                wait = max(last_batch_s, s.max_client_wait_ms / 1000)
                self._sleep(wait)
                pause.add("lock waiters", wait, words)
                break
            started = self._clock()
            self._sleep(s.check_interval_s)
            pause.add(sorted(kinds - {"lock waiters"})[0], self._clock() - started, words)
            checks += 1
            if report is not None and checks % 4 == 1:
                report(pause)
            reasons = [r for r in self.conditions(conn) if r[0] != "lock waiters"]
        return pause


def as_throttle(value: Throttle | None) -> Throttle:
    """None: the default throttle (signals on, no fixed pause)."""
    if value is None:
        return Throttle()
    if isinstance(value, Throttle):
        return value
    raise TypeError(f"not a throttle: {value!r}")


def throttle_for(settings: object) -> Throttle:
    """The throttle a migration's `settings:` ask for."""
    return Throttle(ThrottleSettings.from_settings(settings))
