"""Actions: one SQL statement each, built by operations and run by `db.ActionRunner`.

Operations never execute SQL themselves; they return actions, so `plan` can print every statement
without touching the database, and the runner owns lock_timeout, retries and transactions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    description: str
    sql: str
    # False for statements PostgreSQL refuses inside a transaction (CREATE INDEX CONCURRENTLY, ...).
    transactional: bool = True
    # Takes a lock on a user table: run under lock_timeout with retries.
    takes_lock: bool = True
    # A query returning one boolean; the action runs only when it returns true.  Keeps actions
    # idempotent where SQL has no IF [NOT] EXISTS form, and keeps `plan` free of database reads.
    only_if: str | None = None

    def render(self) -> str:
        lines = [f"-- {self.description}"]
        if not self.transactional:
            lines.append("-- (runs outside a transaction)")
        if self.only_if:
            lines.append(f"-- only if: {' '.join(self.only_if.split())}")
        lines.append(self.sql.rstrip().rstrip(";") + ";")
        return "\n".join(lines)


@dataclass
class ActionResult:
    action: Action
    ran: bool
    rowcount: int
    duration_s: float
    attempts: int
    lock_wait_s: float
