"""The advisory lock serialises migration runs and names the holder when it refuses."""

from __future__ import annotations

import time

import psycopg
import pytest

from migration_dags.errors import MigrationLockedError
from migration_dags.db import ADVISORY_LOCK_KEY, connect, migration_lock


def test_second_run_fails_fast_naming_the_holder(database_url):
    holder = connect(database_url, "migration-dags demo backup run abcd1234")
    with migration_lock(holder):
        other = connect(database_url)
        with pytest.raises(MigrationLockedError) as info:
            with migration_lock(other):
                pass
        assert "migration-dags demo backup run abcd1234" in str(info.value)
        other.close()
    # released: a later run gets it
    again = connect(database_url)
    with migration_lock(again):
        pass
    again.close()
    holder.close()


def test_lock_is_released_when_the_holder_dies(database_url):
    holder = psycopg.connect(database_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    pid = holder.info.backend_pid
    holder.close()
    conn = connect(database_url)
    # the server ends the closed session's backend asynchronously: wait until it is gone
    for _ in range(100):
        if not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            break
        time.sleep(0.05)
    with migration_lock(conn):
        pass
    conn.close()
