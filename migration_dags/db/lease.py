"""The command lock: one migration lock held for a whole command (`up`, `down`, `restore`).

A command runs several steps, each as its own Dagster run in this process, each on its own
connection. Taking the advisory lock per step would let a second command slip in between two
steps, so the command takes it once, on a session of its own that lives as long as the command,
and registers that lease here; every step the command runs in this process finds the lease for
its database and knows it is covered. A command from anywhere else is still refused at once,
naming the holder (MigrationLockedError, exit 6).

Nesting is allowed (an `up` whose validation fails runs `down` under the same lease). If the
lease's session dies (server restart), the lock is gone with it: a dead lease never covers
anything; the next step takes the lock again, or is refused (exit 6) if another run took it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psycopg

from .connect import connect, libpq_url
from .lock import migration_lock

_leases: dict[str, "Lease"] = {}
_guard = threading.Lock()


@dataclass
class Lease:
    url: str
    conn: psycopg.Connection
    depth: int = 1

    def alive(self) -> bool:
        if self.conn.closed or self.conn.broken:
            return False
        try:
            self.conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False


def _key(url: str) -> str:
    return libpq_url(url)


@contextmanager
def command_lock(url: str, application_name: str) -> Iterator[Lease]:
    """Hold the migration lock on `url` until the block ends; re-entrant within the process."""
    key = _key(url)
    with _guard:
        lease = _leases.get(key)
        if lease is not None and lease.alive():
            lease.depth += 1
        else:
            lease = None
    if lease is not None:
        try:
            yield lease
        finally:
            with _guard:
                lease.depth -= 1
        return
    conn = connect(url, application_name)
    try:
        with migration_lock(conn):
            lease = Lease(key, conn)
            with _guard:
                _leases[key] = lease
            try:
                yield lease
            finally:
                with _guard:
                    if _leases.get(key) is lease:
                        del _leases[key]
    finally:
        conn.close()


def covering(url: str) -> Lease | None:
    """The lease this process holds on `url`'s database, if any."""
    with _guard:
        return _leases.get(_key(url))
