"""The PostgreSQL the tests use, and fresh databases on it (a plain module: import it, never a conftest).

The server is MIGRATION_DAGS_TEST_SERVER (a libpq URL of a database to connect to for CREATE
DATABASE), by default postgres at 127.0.0.1:5432.  scripts/test.sh starts it when it is not running.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

SERVER_URL = os.environ.get(
    "MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _url_for(db: str) -> str:
    """SERVER_URL's server, database `db`: a key=value string, which every caller accepts."""
    return make_conninfo(SERVER_URL, dbname=db)


def create_database(prefix: str = "mdg_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, _url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
