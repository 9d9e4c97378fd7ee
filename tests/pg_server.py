"""The PostgreSQL the tests use, and fresh databases on it (a plain module: import it, never a conftest).

The server is MIGRATION_DAGS_TEST_SERVER (a libpq URL of a database to connect to for CREATE
DATABASE), by default postgres at 127.0.0.1:5432.  scripts/test.sh starts it when it is not running.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import psycopg

SERVER_URL = os.environ.get(
    "MIGRATION_DAGS_TEST_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def _url_for(db: str) -> str:
    return re.sub(r"/[^/?]*(\?|$)", f"/{db}\\1", SERVER_URL.rstrip("/"), count=1) if "/" in SERVER_URL.split("://", 1)[1] else f"{SERVER_URL}/{db}"


def create_database(prefix: str = "mdg_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
