"""Fixtures for the operation tests: one database for the whole directory, emptied before each test.

tests/conftest.py creates and drops a database per test; on our machines DROP DATABASE forces a
checkpoint (0.5-1.8 s each), which would be most of this directory's run time. Emptying the
database instead (every session of it ended, every non-system schema dropped, `public` made
again) gives each test the same empty database for a few milliseconds. The database commits
without waiting for its WAL flush (synchronous_commit = off).
"""

from __future__ import annotations

import psycopg
import pytest
from pg_server import create_database, drop_database

_RESET = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid();
DO $reset$
DECLARE s text;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema')
               AND nspname NOT LIKE 'pg\\_%'
    LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP;
END $reset$;
CREATE SCHEMA public;
"""


@pytest.fixture(scope="session")
def _operations_database():
    name, url = create_database("mdg_ops")
    with psycopg.connect(url, autocommit=True) as conn:
        # Every step commits many small transactions; waiting for each WAL flush is most of a test's
        # time on a busy disk, and a test database needs no durability.
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def database_url(_operations_database):
    """An empty database for one test (the directory's shared one, emptied)."""
    with psycopg.connect(_operations_database, autocommit=True) as conn:
        conn.execute(_RESET)
    return _operations_database
