"""Runtime: connections, the advisory lock, and running actions under lock_timeout with retries.

Contract:
- every connection is autocommit; a transaction is always explicit (`with conn.transaction()`),
  so a statement that cannot run in one (CREATE INDEX CONCURRENTLY) simply runs without;
- every action that takes a lock runs with `lock_timeout` set; on LockNotAvailable (or, in a
  transaction, DeadlockDetected) it is retried with exponential backoff and jitter, and the
  client's queue behind us never waits longer than one lock_timeout;
- one session-level advisory lock per database serialises migration runs; the holder is told by
  its application_name.
"""

from __future__ import annotations

import random
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psycopg
from psycopg import errors as pg_errors

from .actions import Action, ActionResult
from .errors import DatabaseUnavailableError, LockTimeoutExhaustedError, MigrationLockedError

ADVISORY_LOCK_KEY = 0x6D69_6772_6461_67  # "migrdag": one key for every migration run
APP_PREFIX = "migration-dags"

# The tool's sync triggers carry a WHEN clause on this setting (skip_writes_of): 'on' marks a
# restore in an undo path, which every sync trigger skips; a backfill batch names the one trigger
# whose work its statement already does (mark_backfill_of), and only that one skips it.
TOOL_WRITE_SETTING = "migration_dags.backfill"
MARK_TOOL_WRITE = f"SET LOCAL {TOOL_WRITE_SETTING} = 'on'"


def mark_backfill_of(trigger: str | None) -> str:
    """SET LOCAL for one backfill batch: only the trigger whose work the batch's statement already
    does (the operation's own sync trigger) may skip it; every other sync trigger still fires, so a
    backfill that writes a column another operation's trigger reads keeps that one in step."""
    value = trigger or "none"
    return f"SET LOCAL {TOOL_WRITE_SETTING} = '{value.replace(chr(39), chr(39) * 2)}'"


def skip_writes_of(trigger: str) -> str:
    """A trigger's WHEN clause: fire unless the write is a restore ('on') or its own backfill."""
    name = trigger.replace("'", "''")
    return (f"coalesce(current_setting('{TOOL_WRITE_SETTING}', true), '') "
            f"NOT IN ('on', '{name}')")


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs too: drop a `+driver` suffix."""
    return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)


def display_url(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def connect(url: str, application_name: str = APP_PREFIX) -> psycopg.Connection:
    try:
        return psycopg.connect(
            libpq_url(url), autocommit=True, application_name=application_name[:63], connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailableError(display_url(url), cause) from exc


@dataclass(frozen=True)
class LockSettings:
    lock_timeout_ms: int = 500
    retries: int = 8
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 2.0
    statement_timeout_ms: int = 0  # 0: none; index builds and validations may take long


class ActionRunner:
    def __init__(self, conn: psycopg.Connection, settings: LockSettings = LockSettings()):
        self.conn = conn
        self.settings = settings

    def run(self, action: Action) -> ActionResult:
        started = time.monotonic()
        if action.only_if is not None:
            row = self.conn.execute(action.only_if).fetchone()
            if not (row and row[0]):
                return ActionResult(action, False, 0, time.monotonic() - started, 1, 0.0)
        attempts, lock_wait = 0, 0.0
        delay = self.settings.backoff_initial_s
        while True:
            attempts += 1
            try_started = time.monotonic()
            try:
                rowcount = self._execute(action)
                return ActionResult(
                    action, True, rowcount, time.monotonic() - started, attempts, lock_wait
                )
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected) as exc:
                # our DDL gives way: a deadlock victim's transaction was rolled back like a
                # timed-out one, so the try can simply be repeated
                if isinstance(exc, pg_errors.DeadlockDetected) and not action.transactional:
                    raise
                lock_wait += time.monotonic() - try_started
                if attempts > self.settings.retries:
                    raise LockTimeoutExhaustedError(
                        action.sql, attempts, self.settings.lock_timeout_ms
                    ) from exc
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.settings.backoff_max_s)

    def _execute(self, action: Action) -> int:
        lock_ms = self.settings.lock_timeout_ms if action.takes_lock else 0
        if action.transactional:
            with self.conn.transaction():
                self.conn.execute(f"SET LOCAL lock_timeout = {int(lock_ms)}")
                self.conn.execute(
                    f"SET LOCAL statement_timeout = {int(self.settings.statement_timeout_ms)}"
                )
                cur = self.conn.execute(action.sql)
                return cur.rowcount
        self.conn.execute(f"SET lock_timeout = {int(lock_ms)}")
        try:
            return self.conn.execute(action.sql).rowcount
        finally:
            self.conn.execute("RESET lock_timeout")

    def run_all(self, actions: list[Action]) -> list[ActionResult]:
        return [self.run(a) for a in actions]


@contextmanager
def migration_lock(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the database-wide migration lock, or fail at once naming who holds it."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]
    if not got:
        raise MigrationLockedError(lock_holder(conn))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def lock_holder(conn: psycopg.Connection) -> str:
    key = ADVISORY_LOCK_KEY
    row = conn.execute(
        """
        SELECT a.pid, a.application_name, a.backend_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = (%s >> 32)::oid AND l.objid = (%s & 4294967295)::oid
        LIMIT 1
        """,
        (key, key),
    ).fetchone()
    if row is None:
        return "holder unknown; it may just have finished"
    pid, app, started = row
    return f"pid {pid}, {app or 'no application_name'}, connected {started:%Y-%m-%d %H:%M:%S}"
