"""The MariaDB the cross-database tests read from, and fresh databases on it (a plain module).

The server is MIGRATION_DAGS_TEST_MARIADB (a SQLAlchemy URL without a database), by default
mysql+pymysql://root@127.0.0.1:3306, where our machines run MariaDB (user root, no password).
Each test gets a database of its own and drops it. A server that does not answer skips the
MariaDB tests with a reason naming it (pytest -ra lists it); the SQLite tests still run.
"""

from __future__ import annotations

import itertools
import os

MARIADB_URL = os.environ.get("MIGRATION_DAGS_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
_counter = itertools.count()


def _connect(database: str | None = None):
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(MARIADB_URL)
    return pymysql.connect(host=url.host or "127.0.0.1", port=url.port or 3306,
                           user=url.username or "root", password=url.password or "",
                           database=database, autocommit=True, connect_timeout=5)


def unreachable_reason() -> str | None:
    try:
        _connect().close()
    except Exception as exc:  # pymysql.err.OperationalError, a refused socket, ...
        return f"MariaDB {MARIADB_URL} does not answer ({exc}); set MIGRATION_DAGS_TEST_MARIADB"
    return None


def create_database(prefix: str = "mdg_legacy") -> tuple[str, str]:
    """A fresh, empty database: (its name, its SQLAlchemy URL)."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        conn.close()
    return name, f"{MARIADB_URL.rstrip('/')}/{name}"


def drop_database(name: str) -> None:
    conn = _connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()
