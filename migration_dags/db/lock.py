"""The migration lock: one session-level advisory lock per database serialises migration runs;
the holder is told by its application_name."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg

from ..errors import MigrationLockedError
from .connect import is_connection_lost

ADVISORY_LOCK_KEY = 0x6D69_6772_6461_67  # "migrdag": one key for every migration run


@contextmanager
def migration_lock(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the database-wide migration lock, or fail at once naming who holds it."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]
    if not got:
        raise MigrationLockedError(lock_holder(conn))
    try:
        yield
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        except psycopg.OperationalError as exc:
            if not is_connection_lost(exc):
                raise
            # the session is gone and its lock with it; keep the error that ended the block


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
