"""Running actions under lock_timeout with retries.

Contract:
- every connection is autocommit; a transaction is always explicit (`with conn.transaction()`),
  so a statement that cannot run in one (CREATE INDEX CONCURRENTLY) simply runs without;
- every action that takes a lock runs with `lock_timeout` set; on LockNotAvailable (or, in a
  transaction, DeadlockDetected) it is retried with exponential backoff and jitter, and the
  client's queue behind us never waits longer than one lock_timeout.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors

from ..actions import Action, ActionResult
from ..errors import LockTimeoutExhaustedError
from .faults import checkpoint


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
        checkpoint(f"before {action.description}")
        while True:
            attempts += 1
            try_started = time.monotonic()
            try:
                rowcount = self._execute(action)
                checkpoint(f"after {action.description}")
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
